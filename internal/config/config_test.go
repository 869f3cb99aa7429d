package config

import (
	"github.com/repolock/repolock/internal/timing"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/repolock/repolock/consullock"
)

// mustLoad loads a configuration that must produce no diagnostics at all.
func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	cfg, files, diags := Load(path)
	if len(diags) > 0 {
		t.Fatalf("Load(%s):\n%s", path, render(t, files, diags))
	}
	return cfg
}

func mustLoadSource(t *testing.T, src, filename string) *Config {
	t.Helper()
	cfg, files, diags := LoadSource([]byte(src), filename)
	if len(diags) > 0 {
		t.Fatalf("LoadSource:\n%s", render(t, files, diags))
	}
	return cfg
}

// mkLock spells out every field of a Lock.
func mkLock(ttl, wait time.Duration, onBusy string, sig syscall.Signal, kill, renew, margin time.Duration) Lock {
	return Lock{Model: timing.Model{Lease: timing.Lease{TTL: ttl, RenewInterval: renew, Margin: margin}, KillTimeout: kill},
		Wait: wait, OnBusy: onBusy, KillSignal: sig}
}

func TestDefaultLock(t *testing.T) {
	want := mkLock(30*time.Second, time.Hour, "fail", syscall.SIGTERM, 10*time.Second, 10*time.Second, 3*time.Second)
	if got := DefaultLock(); got != want {
		t.Fatalf("DefaultLock() = %+v, want %+v", got, want)
	}
	if err := DefaultLock().Validate(); err != nil {
		t.Fatalf("DefaultLock().Validate() = %v", err)
	}
}

func TestLockValidate(t *testing.T) {
	with := func(change func(*Lock)) Lock {
		l := DefaultLock()
		change(&l)
		return l
	}
	tests := []struct {
		name string
		lock Lock
		want string // "" for valid
	}{
		{"default", DefaultLock(), ""},
		{"sum just below ttl", with(func(l *Lock) {
			l.TTL, l.RenewInterval, l.KillTimeout, l.Margin = 20*time.Second, 6*time.Second, 10*time.Second, 3999*time.Millisecond
		}), ""},
		{"sum equals ttl", with(func(l *Lock) {
			l.TTL, l.RenewInterval, l.KillTimeout, l.Margin = 20*time.Second, 7*time.Second, 10*time.Second, 3*time.Second
		}), "renew_interval (7s) + kill_timeout (10s) + margin (3s) must be less than ttl (20s): "},
		{"sum above ttl", with(func(l *Lock) {
			l.TTL, l.RenewInterval, l.KillTimeout, l.Margin = 20*time.Second, 10*time.Second, 10*time.Second, 3*time.Second
		}), "renew_interval (10s) + kill_timeout (10s) + margin (3s) must be less than ttl (20s): "},
		{"huge terms do not overflow", with(func(l *Lock) {
			l.TTL, l.RenewInterval, l.KillTimeout, l.Margin = 24*time.Hour, 1<<62, 1<<62, 1<<62
		}), "must be less than ttl"},
		{"zero kill timeout", with(func(l *Lock) {
			l.TTL, l.RenewInterval, l.KillTimeout, l.Margin = time.Second, 500*time.Millisecond, 0, 10*time.Millisecond
		}), ""},
		{"ttl below 1s", with(func(l *Lock) { l.TTL = 999 * time.Millisecond }), "ttl (999ms) must be between 1s and 24h0m0s"},
		{"ttl above 24h", with(func(l *Lock) { l.TTL = 25 * time.Hour }), "must be between 1s and 24h0m0s"},
		{"negative wait", with(func(l *Lock) { l.Wait = -time.Second }), "wait (-1s) must not be negative"},
		{"zero wait", with(func(l *Lock) { l.Wait = 0 }), ""},
		{"negative kill timeout", with(func(l *Lock) { l.KillTimeout = -time.Second }), "kill_timeout (-1s) must not be negative"},
		{"zero renew interval", with(func(l *Lock) { l.RenewInterval = 0 }), "renew_interval (0s) must be at least 100ms"},
		{"negative margin", with(func(l *Lock) { l.Margin = -time.Second }), "margin (-1s) must be at least 10ms"},
		{"zero margin", with(func(l *Lock) { l.Margin = 0 }), "margin (0s) must be at least 10ms"},
		{"bad on_busy", with(func(l *Lock) { l.OnBusy = "wait" }), `on_busy "wait" must be "fail" or "skip"`},
		{"zero signal", with(func(l *Lock) { l.KillSignal = 0 }), "kill_signal 0 is not one of"},
		{"stop signal", with(func(l *Lock) { l.KillSignal = syscall.SIGSTOP }), "is not one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.lock.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseSignal(t *testing.T) {
	good := map[string]syscall.Signal{
		"TERM": syscall.SIGTERM, "SIGTERM": syscall.SIGTERM, "sigterm": syscall.SIGTERM, " SigTerm ": syscall.SIGTERM,
		"sigint": syscall.SIGINT, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT,
		"USR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2, "KILL": syscall.SIGKILL, "abrt": syscall.SIGABRT,
		"ALRM": syscall.SIGALRM,
	}
	for name, want := range good {
		got, err := ParseSignal(name)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	for _, name := range []string{"", "SIG", "TERMINATE", "STOP", "SIGCONT", "15", "SIGSIGTERM"} {
		if sig, err := ParseSignal(name); err == nil {
			t.Errorf("ParseSignal(%q) = %v, want an error", name, sig)
		}
	}
}

func TestMinimalGetsDefaults(t *testing.T) {
	cfg := mustLoad(t, filepath.Join("testdata", "valid", "minimal.hcl"))
	if cfg.Lock != DefaultLock() {
		t.Errorf("top-level lock = %+v, want the defaults", cfg.Lock)
	}
	if cfg.Consul != (Consul{Prefix: "repolock"}) {
		t.Errorf("consul = %+v, want only the default prefix", cfg.Consul)
	}
	repo, ok := cfg.Repository("photos")
	if !ok {
		t.Fatal(`no repository "photos"`)
	}
	wantRepo := &Repository{
		Name: "photos", Tool: "restic", Location: "sftp:backup@nas:/srv/restic/photos",
		UnlockNative: "never", DeclRange: repo.DeclRange, Ranges: repo.Ranges,
	}
	if !reflect.DeepEqual(repo, wantRepo) {
		t.Errorf("repository = %+v, want %+v", repo, wantRepo)
	}
	job, ok := cfg.Job("photos-nightly")
	if !ok {
		t.Fatal(`no job "photos-nightly"`)
	}
	if job.Lock != DefaultLock() || job.Mode != "" || job.Repository != "photos" ||
		!reflect.DeepEqual(job.Command, []string{"restic", "backup", "/data/photos"}) {
		t.Errorf("job = %+v", job)
	}
	if job.DeclRange.Filename != cfg.Filename || job.DeclRange.Start.Line != 7 {
		t.Errorf("job DeclRange = %s, want line 7 of %s", job.DeclRange, cfg.Filename)
	}
	if _, ok := cfg.Job("nope"); ok {
		t.Error(`Job("nope") found something`)
	}
	if _, ok := cfg.Repository("nope"); ok {
		t.Error(`Repository("nope") found something`)
	}
}

func TestLockOverridesMerge(t *testing.T) {
	cfg := mustLoad(t, filepath.Join("testdata", "valid", "overrides.hcl"))

	top := mkLock(time.Minute, 5*time.Minute, "fail", syscall.SIGINT, 20*time.Second, 20*time.Second, 6*time.Second)
	if cfg.Lock != top {
		t.Errorf("top-level lock = %+v, want %+v", cfg.Lock, top)
	}
	wantJobs := map[string]Lock{
		// No lock block: the top-level settings as they are.
		"photos-nightly": top,
		// ttl and kill_timeout overridden; renew_interval and margin follow
		// the job's ttl; wait and kill_signal inherited.
		"photos-check": mkLock(15*time.Second, 5*time.Minute, "fail", syscall.SIGINT, 3*time.Second, 5*time.Second, 1500*time.Millisecond),
		// Behaviour only: timing inherited.
		"archive-daily": mkLock(time.Minute, 0, "skip", syscall.SIGTERM, 20*time.Second, 20*time.Second, 6*time.Second),
	}
	for name, want := range wantJobs {
		job, ok := cfg.Job(name)
		if !ok {
			t.Fatalf("no job %q", name)
		}
		if job.Lock != want {
			t.Errorf("job %s lock = %+v, want %+v", name, job.Lock, want)
		}
		if err := job.Lock.Validate(); err != nil {
			t.Errorf("job %s lock does not validate: %v", name, err)
		}
	}

	wantConsul := Consul{Address: "10.0.0.5:8500", Prefix: "backups/repolock", TokenFile: "/secrets/consul-token", Datacenter: "dc2"}
	if cfg.Consul != wantConsul {
		t.Errorf("consul = %+v, want %+v", cfg.Consul, wantConsul)
	}
	var names []string
	for _, r := range cfg.Repositories {
		names = append(names, r.Name)
	}
	if want := []string{"photos", "archive", "late"}; !reflect.DeepEqual(names, want) {
		t.Errorf("repositories in order %v, want %v", names, want)
	}
	archive, _ := cfg.Repository("archive")
	if !archive.SharedLocal || archive.PasswordCommand != "cat /secrets/borg-pass" || archive.UnlockNative != "never" {
		t.Errorf("archive = %+v", archive)
	}
	photos, _ := cfg.Repository("photos")
	if photos.LockKey != "photos.main" || photos.UnlockNative != "all" || photos.Env["AWS_REGION"] != "eu-west-1" {
		t.Errorf("photos = %+v", photos)
	}
	nightly, _ := cfg.Job("photos-nightly")
	if nightly.Dir != "/data" || nightly.Env["RESTIC_COMPRESSION"] != "max" {
		t.Errorf("photos-nightly = %+v", nightly)
	}
}

// A job that sets ttl alone must have renew_interval and margin derived from
// its own ttl, except where the top-level block set them explicitly.
func TestDerivedTimingFollowsJobTTL(t *testing.T) {
	cfg := mustLoadSource(t, `
lock {
  ttl    = "1m"
  margin = "2s"
}
repository "r" {
  tool     = "exec"
  location = "/srv/r"
}
job "j" {
  repository = "r"
  command    = ["true"]
  lock {
    ttl          = "30s"
    kill_timeout = "5s"
  }
}
`, "derived.hcl")
	j, _ := cfg.Job("j")
	if j.Lock.RenewInterval != 10*time.Second || j.Lock.Margin != 2*time.Second {
		t.Errorf("job lock = %+v, want renew_interval 10s (ttl/3) and the explicit margin 2s", j.Lock)
	}
	if cfg.Lock.RenewInterval != 20*time.Second {
		t.Errorf("top-level renew_interval = %s, want 20s", cfg.Lock.RenewInterval)
	}
}

func TestFunctions(t *testing.T) {
	cfg := mustLoad(t, filepath.Join("testdata", "valid", "functions.hcl"))
	r, _ := cfg.Repository("photos")
	want := &Repository{
		Name: "photos", Tool: "restic", Location: "sftp:backup@nas:/srv/restic/photos",
		PasswordFile: "/secrets/restic-pass", LockKey: "photos", UnlockNative: "never",
		Env: map[string]string{"RESTIC_HOST": "NAS"}, DeclRange: r.DeclRange, Ranges: r.Ranges,
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("repository = %+v, want %+v", r, want)
	}
	j, _ := cfg.Job("photos-nightly")
	if want := []string{"sh", "-c", "restic backup /data/photos"}; !reflect.DeepEqual(j.Command, want) {
		t.Errorf("command = %q, want %q", j.Command, want)
	}
}

func TestEnvFunction(t *testing.T) {
	t.Setenv("REPOLOCK_TEST_LOCATION", "sftp:backup@nas:/srv/x")
	t.Setenv("REPOLOCK_TEST_EMPTY", "")
	cfg := mustLoadSource(t, `
repository "r" {
  tool          = "restic"
  location      = env("REPOLOCK_TEST_LOCATION")
  password_file = env("REPOLOCK_TEST_SURELY_UNSET", "/fallback")
  lock_key      = env("REPOLOCK_TEST_EMPTY", "not-used")
}
`, "env.hcl")
	r, _ := cfg.Repository("r")
	if r.Location != "sftp:backup@nas:/srv/x" {
		t.Errorf("location = %q", r.Location)
	}
	if r.PasswordFile != "/fallback" {
		t.Errorf("password_file = %q, want the default", r.PasswordFile)
	}
	// Set but empty is a value, not a reason to use the default; an empty
	// optional string then means "unset".
	if r.LockKey != "" {
		t.Errorf("lock_key = %q, want the empty value of the set variable", r.LockKey)
	}
}

func TestFileFunction(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "location.txt"), []byte("sftp:backup@nas:/srv/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sub", "config.hcl")
	src := `
repository "kept" {
  tool     = "restic"
  location = file("../location.txt")
}
repository "trimmed" {
  tool     = "restic"
  location = trimspace(file("../location.txt"))
}
repository "absolute" {
  tool     = "restic"
  location = trimspace(file("` + filepath.Join(dir, "location.txt") + `"))
}
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	// Relative paths follow the config file, not the working directory.
	t.Chdir(t.TempDir())
	cfg := mustLoad(t, path)
	for name, want := range map[string]string{
		"kept":     "sftp:backup@nas:/srv/x\n",
		"trimmed":  "sftp:backup@nas:/srv/x",
		"absolute": "sftp:backup@nas:/srv/x",
	} {
		r, _ := cfg.Repository(name)
		if r.Location != want {
			t.Errorf("%s: location = %q, want %q", name, r.Location, want)
		}
	}
}

func TestFileFunctionRefusesNonRegularFiles(t *testing.T) {
	for _, path := range []string{"/dev/null", t.TempDir()} {
		_, _, diags := LoadSource([]byte(`
repository "r" {
  tool     = "restic"
  location = file("`+path+`")
}
`), "special.hcl")
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "is not a regular file") {
			t.Errorf("file(%q): diagnostics %v, want \"is not a regular file\"", path, diags)
		}
	}
}

func TestFileFunctionRefusesLargeFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, diags := LoadSource([]byte(`
repository "r" {
  tool     = "restic"
  location = file("big")
}
`), filepath.Join(dir, "c.hcl"))
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "larger than") {
		t.Errorf("diagnostics %v, want \"larger than\"", diags)
	}
}

func TestLoadMissingFile(t *testing.T) {
	cfg, files, diags := Load(filepath.Join(t.TempDir(), "nope.hcl"))
	if cfg != nil || files == nil || !diags.HasErrors() || !strings.Contains(diags.Error(), "no such file") {
		t.Fatalf("Load = %v, %v, %v", cfg, files, diags)
	}
	// The writer must cope with a diagnostic without source.
	if out := render(t, files, diags); !strings.Contains(out, "Cannot read configuration file") {
		t.Errorf("output = %q", out)
	}
}

func TestNullOptionalAttributesMeanUnset(t *testing.T) {
	cfg := mustLoadSource(t, `
lock {
  ttl = null
}
repository "r" {
  tool          = "restic"
  location      = "/srv/r"
  password_file = null
  env           = null
}
job "j" {
  repository = "r"
  command    = ["restic", "check"]
  mode       = null
}
`, "null.hcl")
	if cfg.Lock != DefaultLock() {
		t.Errorf("lock = %+v, want defaults", cfg.Lock)
	}
}

func TestErrorsAreAccumulated(t *testing.T) {
	// One run of "repolock validate" should show every independent problem,
	// not just the first.
	_, files, diags := LoadSource([]byte(`
repository "a" {
  tool     = "rustic"
  location = "/srv/a"
}
repository "b" {
  tool          = "borg"
  location      = "/srv/b"
  unlock_native = "sometimes"
}
job "j" {
  repository = "c"
  command    = ["true"]
  mode       = "solo"
}
`), "many.hcl")
	var summaries []string
	for _, d := range diags {
		summaries = append(summaries, d.Summary)
	}
	want := []string{"Unknown tool", "Invalid unlock_native", "Unknown repository", "Invalid mode"}
	if !reflect.DeepEqual(summaries, want) {
		t.Errorf("summaries = %q, want %q\n%s", summaries, want, render(t, files, diags))
	}
}

func TestWriteDiagnosticsColor(t *testing.T) {
	_, files, diags := Load(filepath.Join("testdata", "invalid", "unknown_tool.hcl"))
	out := render(t, files, diags)
	if strings.Contains(out, "\x1b[") {
		t.Errorf("plain output has escape codes: %q", out)
	}
	var buf strings.Builder
	if err := WriteDiagnostics(&buf, files, diags, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "\x1b[31mError") {
		t.Errorf("color output lacks the red severity: %q", buf.String())
	}
	if err := WriteDiagnostics(&buf, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "x"}}, false); err != nil {
		t.Errorf("WriteDiagnostics with nil Files: %v", err)
	}
}

// The documented example at the repository root must always load cleanly,
// on any machine: it uses env() defaults and refers to files only by path.
func TestRootExampleLoads(t *testing.T) {
	cfg := mustLoad(t, filepath.Join("..", "..", "config.hcl"))
	if len(cfg.Repositories) != 2 {
		t.Errorf("%d repositories, want 2", len(cfg.Repositories))
	}
	tools := map[string]bool{}
	for _, r := range cfg.Repositories {
		tools[r.Tool] = true
	}
	if !tools["restic"] || !tools["borg"] {
		t.Errorf("tools %v, want restic and borg", tools)
	}
	for _, name := range []string{"photos-nightly", "photos-prune", "archive-daily"} {
		j, ok := cfg.Job(name)
		if !ok {
			t.Errorf("no job %q", name)
			continue
		}
		if err := j.Lock.Validate(); err != nil {
			t.Errorf("job %s: %v", name, err)
		}
	}
	if j, _ := cfg.Job("photos-nightly"); j != nil && j.Mode != "" {
		t.Errorf("photos-nightly mode = %q, want it left to inference", j.Mode)
	}
	if j, _ := cfg.Job("photos-prune"); j != nil && (j.Mode != "exclusive" || !reflect.DeepEqual(j.Command, []string{"restic", "forget", "--prune", "--keep-daily", "7"})) {
		t.Errorf("photos-prune = %+v", j)
	}
}

// Names take the bytes of a lock key, which consullock defines: for every
// byte, a name and a key accept it alike.
func TestNameBytesAreKeyBytes(t *testing.T) {
	for b := 0; b < 256; b++ {
		s := "a" + string([]byte{byte(b)})
		if got, want := validName(s), consullock.CheckKey(s) == nil; got != want {
			t.Errorf("byte %q: validName %v, consullock.CheckKey accepts %v", byte(b), got, want)
		}
	}
	for _, s := range []string{"", ".", ".."} {
		if validName(s) {
			t.Errorf("validName(%q) = true", s)
		}
	}
	if long := strings.Repeat("n", consullock.MaxKeyLen+1); !validName(long) {
		t.Errorf("a name of %d bytes is refused; only keys have a length limit", len(long))
	}
}

// The consul block's datacenter settings: a session_address without the
// datacenter it serves, an invalid datacenter name and an unreadable TLS
// file are each refused with their own diagnostic.
func TestConsulBlockChecks(t *testing.T) {
	_, files, diags := LoadSource([]byte(`
consul {
  session_address = "consul-server.dc2:8500"
  ca_file         = "/nonexistent/ca.pem"
}
`), "consul.hcl")
	var summaries []string
	for _, d := range diags {
		summaries = append(summaries, d.Summary)
	}
	want := []string{"session_address without datacenter", "Unreadable TLS file"}
	if !reflect.DeepEqual(summaries, want) {
		t.Errorf("summaries = %q, want %q\n%s", summaries, want, render(t, files, diags))
	}
	_, files, diags = LoadSource([]byte("consul {\n  datacenter = \"dc 1\"\n}\n"), "dc.hcl")
	if len(diags) != 1 || diags[0].Summary != "Invalid datacenter name" {
		t.Errorf("datacenter \"dc 1\": %s", render(t, files, diags))
	}
	c := mustLoadSource(t, "consul {\n  datacenter = \"dc1\"\n  session_address = \"10.0.0.5:8500\"\n}\n", "ok.hcl")
	if c.Consul.Datacenter != "dc1" || c.Consul.SessionAddress != "10.0.0.5:8500" {
		t.Errorf("consul block = %+v", c.Consul)
	}
}
