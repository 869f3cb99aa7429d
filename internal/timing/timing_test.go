package timing

import (
	"strings"
	"testing"
	"time"
)

func TestModelValidate(t *testing.T) {
	s := time.Second
	model := func(ttl, renew, kill, margin time.Duration) Model {
		return Model{Lease: Lease{TTL: ttl, RenewInterval: renew, Margin: margin}, KillTimeout: kill}
	}
	withTTL := func(ttl, kill time.Duration) Model { return Model{Lease: LeaseFor(ttl), KillTimeout: kill} }
	cases := []struct {
		name string
		m    Model
		want string // substring of the error, "" for valid
	}{
		{"defaults", Default(), ""},
		{"defaults of 30s", withTTL(30*s, 10*s), ""},
		{"tight but valid", model(3*s, s, s, 900*time.Millisecond), ""},
		{"sum equals ttl", model(3*s, s, s, s), "must be less than ttl"},
		{"kill timeout too long", withTTL(30*s, 25*s), "kill_timeout (25s)"},
		{"zero ttl", Model{}, "ttl (0s) must be between"},
		{"ttl above a day", withTTL(25*time.Hour, s), "must be between"},
		{"negative kill timeout", withTTL(30*s, -s), "must not be negative"},
		{"zero margin", model(30*s, 10*s, s, 0), "margin (0s) must be at least 10ms"},
		{"zero renew", model(30*s, 0, s, 3*s), "renew_interval (0s) must be at least 100ms"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.m.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, c.want)
			}
		})
	}
}

func TestLeaseValidate(t *testing.T) {
	if err := LeaseFor(2 * time.Second).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Lease{TTL: 2 * time.Second, RenewInterval: 1500 * time.Millisecond, Margin: time.Second}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "must be less than ttl") {
		t.Fatalf("renew + margin > ttl: %v", err)
	}
}

func TestDeadlines(t *testing.T) {
	m := Model{Lease: Lease{TTL: 30 * time.Second, Margin: 3 * time.Second}, KillTimeout: 10 * time.Second}
	soft, hard := m.Deadlines(1_000_000_000)
	if got, want := hard, int64(1e9+27e9); int64(got) != want {
		t.Errorf("hard = %d, want %d", got, want)
	}
	if got, want := soft, int64(1e9+17e9); int64(got) != want {
		t.Errorf("soft = %d, want %d", got, want)
	}
	if hard != m.Expiry(1_000_000_000) {
		t.Errorf("hard %d is not the lease's expiry %d", hard, m.Expiry(1_000_000_000))
	}
}

func TestFitKillTimeout(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		kill, supervisor, want time.Duration
		changed                bool
	}{
		{10 * s, 30 * s, 10 * s, false},
		{10 * s, 5 * s, 3750 * time.Millisecond, true}, // Nomad's default kill_timeout
		{10 * s, 3 * s, 2 * s, true},
		{10 * s, 1 * s, 500 * time.Millisecond, true},
		{s, 3 * s, s, false},
	} {
		got, changed := FitKillTimeout(tc.kill, tc.supervisor)
		if got != tc.want || changed != tc.changed {
			t.Errorf("FitKillTimeout(%s, %s) = %s, %v; want %s, %v", tc.kill, tc.supervisor, got, changed, tc.want, tc.changed)
		}
	}
}
