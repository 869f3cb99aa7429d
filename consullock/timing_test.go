package consullock

import (
	"strings"
	"testing"
	"time"
)

func TestTimingValidate(t *testing.T) {
	s := time.Second
	cases := []struct {
		name string
		t    Timing
		want string // substring of the error, "" for valid
	}{
		{"defaults of 30s", Timing{TTL: 30 * s, KillTimeout: 10 * s}.WithDefaults(), ""},
		{"tight but valid", Timing{TTL: 3 * s, RenewInterval: s, KillTimeout: s, Margin: 900 * time.Millisecond}, ""},
		{"sum equals ttl", Timing{TTL: 3 * s, RenewInterval: s, KillTimeout: s, Margin: s}, "must be less than ttl"},
		{"kill timeout too long", Timing{TTL: 30 * s, KillTimeout: 25 * s}.WithDefaults(), "kill_timeout (25s)"},
		{"zero ttl", Timing{}, "ttl must be positive"},
		{"negative kill timeout", Timing{TTL: 30 * s, KillTimeout: -s}.WithDefaults(), "not negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.t.Validate()
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

func TestDeadlines(t *testing.T) {
	tm := Timing{TTL: 30 * time.Second, KillTimeout: 10 * time.Second, Margin: 3 * time.Second}
	soft, hard := tm.Deadlines(1_000_000_000)
	if got, want := hard, int64(1e9+27e9); int64(got) != want {
		t.Errorf("hard = %d, want %d", got, want)
	}
	if got, want := soft, int64(1e9+17e9); int64(got) != want {
		t.Errorf("soft = %d, want %d", got, want)
	}
}

func TestEligible(t *testing.T) {
	sh := Record{Mode: Shared}
	ex := Record{Mode: Exclusive}
	cases := []struct {
		mode  Mode
		ahead []Record
		want  bool
	}{
		{Exclusive, nil, true},
		{Exclusive, []Record{sh}, false},
		{Exclusive, []Record{ex}, false},
		{Shared, nil, true},
		{Shared, []Record{sh, sh}, true},
		{Shared, []Record{sh, ex}, false},
		{Shared, []Record{ex, sh}, false},
	}
	for _, c := range cases {
		if got := eligible(c.mode, c.ahead); got != c.want {
			t.Errorf("eligible(%s, %v) = %v, want %v", c.mode, c.ahead, got, c.want)
		}
	}
}
