package config

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// layeredSource is a config with a top-level lock block of the file
// attributes and a job "j" whose lock block has the job attributes, one a
// line; a nil list leaves the block out.
func layeredSource(file, job []string) string {
	var b strings.Builder
	if file != nil {
		b.WriteString("lock {\n  " + strings.Join(file, "\n  ") + "\n}\n")
	}
	b.WriteString("repository \"r\" {\n  tool     = \"exec\"\n  location = \"/srv/r\"\n}\n")
	b.WriteString("job \"j\" {\n  repository = \"r\"\n  command    = [\"true\"]\n")
	if job != nil {
		b.WriteString("  lock {\n    " + strings.Join(job, "\n    ") + "\n  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// Issue 15: the lock settings of the file's lock block, the job's lock
// block and the flags of `repolock exec` stack as layers, each setting only
// what it names, and renew_interval and margin follow ttl only where no
// layer sets them. The merged result is checked once, naming the violated
// relation; a violation that a lock block causes is reported at that
// block.
func TestLockLayers(t *testing.T) {
	const s = time.Second
	dur := func(d time.Duration) *time.Duration { return &d }
	sig := func(s syscall.Signal) *syscall.Signal { return &s }
	str := func(s string) *string { return &s }
	cases := []struct {
		name      string
		file, job []string     // attributes of the lock blocks; nil: no block
		flags     LockSettings // the top layer, as `repolock exec` fills it
		want      Lock         // checked when the stack is valid
		wantErr   string       // part of the error; "" when valid
		wantAt    string       // for an error in a lock block: the source line it points at
	}{
		{name: "no layer sets anything", want: DefaultLock()},
		{
			name: "file only",
			file: []string{`ttl = "1m"`, `wait = "5m"`, `on_busy = "skip"`, `kill_timeout = "20s"`, `kill_signal = "INT"`},
			want: mkLock(time.Minute, 5*time.Minute, "skip", syscall.SIGINT, 20*s, 20*s, 6*s),
		},
		{
			name: "job over file",
			file: []string{`ttl = "1m"`, `wait = "5m"`, `kill_signal = "INT"`, `margin = "4s"`},
			job:  []string{`ttl = "15s"`, `kill_timeout = "3s"`, `on_busy = "skip"`},
			// renew_interval follows the job's ttl; the file's margin stays.
			want: mkLock(15*s, 5*time.Minute, "skip", syscall.SIGINT, 3*s, 5*s, 4*s),
		},
		{
			name:  "flags over job over file",
			file:  []string{`ttl = "1m"`, `wait = "5m"`, `kill_signal = "INT"`},
			job:   []string{`ttl = "30s"`, `wait = "1m"`},
			flags: LockSettings{Wait: dur(0), KillTimeout: dur(4 * s), KillSignal: sig(syscall.SIGHUP)},
			want:  mkLock(30*s, 0, "fail", syscall.SIGHUP, 4*s, 10*s, 3*s),
		},
		{
			name:  "flag ttl: renew_interval and margin follow it when no layer sets them",
			file:  []string{`ttl = "30s"`},
			job:   []string{`kill_timeout = "5s"`},
			flags: LockSettings{TTL: dur(time.Minute)},
			want:  mkLock(time.Minute, time.Hour, "fail", syscall.SIGTERM, 5*s, 20*s, 6*s),
		},
		{
			name:  "flag ttl keeps the file's renew_interval and margin",
			file:  []string{`ttl = "30s"`, `renew_interval = "5s"`, `margin = "2s"`},
			flags: LockSettings{TTL: dur(time.Minute)},
			want:  mkLock(time.Minute, time.Hour, "fail", syscall.SIGTERM, 10*s, 5*s, 2*s),
		},
		{
			name:  "flag ttl keeps the job's renew_interval and the file's margin",
			file:  []string{`margin = "2s"`},
			job:   []string{`renew_interval = "4s"`},
			flags: LockSettings{TTL: dur(time.Minute)},
			want:  mkLock(time.Minute, time.Hour, "fail", syscall.SIGTERM, 10*s, 4*s, 2*s),
		},
		{
			name:  "flag renew_interval and margin under a job's ttl",
			job:   []string{`ttl = "1m"`},
			flags: LockSettings{RenewInterval: dur(5 * s), Margin: dur(time.Second)},
			want:  mkLock(time.Minute, time.Hour, "fail", syscall.SIGTERM, 10*s, 5*s, s),
		},
		{
			name: "wait, on_busy and kill_signal of the file pass through a job that sets timing",
			file: []string{`wait = "2m"`, `on_busy = "skip"`, `kill_signal = "QUIT"`},
			job:  []string{`ttl = "45s"`},
			want: mkLock(45*s, 2*time.Minute, "skip", syscall.SIGQUIT, 10*s, 15*s, 4500*time.Millisecond),
		},
		{
			name:  "on_busy and wait of a flag layer",
			file:  []string{`on_busy = "skip"`},
			flags: LockSettings{OnBusy: str("fail"), Wait: dur(time.Minute)},
			want:  mkLock(30*s, time.Minute, "fail", syscall.SIGTERM, 10*s, 10*s, 3*s),
		},
		{
			name:    "flag ttl breaks the relation with the file's explicit values",
			file:    []string{`renew_interval = "10s"`, `margin = "3s"`},
			flags:   LockSettings{TTL: dur(20 * s)},
			wantErr: "renew_interval (10s) + kill_timeout (10s) + margin (3s) must be less than ttl (20s)",
		},
		{
			name:    "flag kill_timeout breaks the relation with the job's and the file's",
			file:    []string{`ttl = "1m"`},
			job:     []string{`renew_interval = "20s"`},
			flags:   LockSettings{KillTimeout: dur(35 * s)},
			wantErr: "renew_interval (20s) + kill_timeout (35s) + margin (6s) must be less than ttl (1m0s)",
		},
		{
			name:    "negative flag wait",
			flags:   LockSettings{Wait: dur(-s)},
			wantErr: "wait (-1s) must not be negative",
		},
		{
			name:    "job block breaks the relation with the file's: reported at the job's attribute",
			file:    []string{`ttl = "1m"`, `renew_interval = "20s"`},
			job:     []string{`on_busy = "skip"`, `kill_timeout = "35s"`},
			wantErr: "renew_interval (20s) + kill_timeout (35s) + margin (6s) must be less than ttl (1m0s)",
			wantAt:  `kill_timeout = "35s"`,
		},
		{
			name:    "file block breaks the relation: reported at its first timing attribute",
			file:    []string{`wait = "1m"`, `ttl = "10s"`},
			wantErr: "kill_timeout (10s) + margin (1s) must be less than ttl (10s)",
			wantAt:  `ttl = "10s"`,
		},
		{
			name:    "negative wait in a job block: one check, at the attribute",
			job:     []string{`wait = "-5s"`},
			wantErr: "wait (-5s) must not be negative",
			wantAt:  `wait = "-5s"`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := layeredSource(c.file, c.job)
			cfg, files, diags := LoadSource([]byte(src), "layers.hcl")
			if diags.HasErrors() {
				checkLayerDiag(t, src, diags, c.wantErr, c.wantAt)
				if t.Failed() {
					t.Log(render(t, files, diags))
				}
				return
			}
			if c.wantAt != "" {
				t.Fatalf("config loaded; want an error at %q", c.wantAt)
			}
			j, _ := cfg.Job("j")
			if c.job == nil && (j.LockSettings != cfg.LockSettings || j.Lock != cfg.Lock) {
				t.Errorf("job without a lock block: %+v / %+v, want the file's %+v / %+v", j.LockSettings, j.Lock, cfg.LockSettings, cfg.Lock)
			}
			if j.Lock != j.LockSettings.Resolve() {
				t.Errorf("job.Lock %+v is not its LockSettings resolved (%+v)", j.Lock, j.LockSettings.Resolve())
			}
			got := c.flags.Over(j.LockSettings).Resolve()
			err := got.Validate()
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("merged %+v: %v", got, err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("merged %+v: error %v, want one containing %q", got, err, c.wantErr)
			case c.wantErr == "" && got != c.want:
				t.Fatalf("merged lock\n got  %+v\n want %+v", got, c.want)
			}
		})
	}
}

// checkLayerDiag checks that diags hold an error containing want whose
// subject is the source line containing at.
func checkLayerDiag(t *testing.T, src string, diags hcl.Diagnostics, want, at string) {
	t.Helper()
	if at == "" {
		t.Fatalf("config refused; want it to load")
	}
	lines := strings.Split(src, "\n")
	for _, d := range diags.Errs() {
		d := d.(*hcl.Diagnostic)
		if !strings.Contains(d.Detail, want) || d.Subject == nil {
			continue
		}
		if line := lines[d.Subject.Start.Line-1]; !strings.Contains(line, at) {
			t.Errorf("%q is reported at line %d (%q), want the line of %q", want, d.Subject.Start.Line, line, at)
		}
		return
	}
	t.Errorf("no error containing %q", want)
}

// Over sets only what the lower layer leaves unset, field by field.
func TestLockSettingsOver(t *testing.T) {
	a, b := 1*time.Second, 2*time.Second
	skip, fail := OnBusySkip, OnBusyFail
	term, hup := syscall.SIGTERM, syscall.SIGHUP
	top := LockSettings{TTL: &a, OnBusy: &skip, KillSignal: &hup}
	base := LockSettings{TTL: &b, Wait: &b, Margin: &b, RenewInterval: &b, KillTimeout: &b, OnBusy: &fail, KillSignal: &term}
	got := top.Over(base)
	want := LockSettings{TTL: &a, Wait: &b, Margin: &b, RenewInterval: &b, KillTimeout: &b, OnBusy: &skip, KillSignal: &hup}
	if got != want {
		t.Fatalf("Over = %+v, want %+v", got, want)
	}
	if (LockSettings{}).Over(LockSettings{}) != (LockSettings{}) {
		t.Fatal("two empty layers set something")
	}
}
