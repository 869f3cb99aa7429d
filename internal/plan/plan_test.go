package plan

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/run"
	"github.com/repolock/repolock/plugin"
)

// load reads a config and plans all of it, as `repolock validate` does.
func load(t *testing.T, path string) (*Config, hcl.Diagnostics) {
	t.Helper()
	cfg, _, diags := Load(path)
	return cfg, diags
}

// marked returns the line and column where the value of the attribute
// marked "# offending" starts.
func marked(t *testing.T, path string) (line, col int) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(src), "\n") {
		if !strings.Contains(l, "# offending") {
			continue
		}
		eq := strings.Index(l, "=")
		rest := l[eq+1:]
		return i + 1, eq + 1 + len(rest) - len(strings.TrimLeft(rest, " ")) + 1
	}
	t.Fatalf("%s has no # offending marker", path)
	return 0, 0
}

// Issue 7 acceptance 4: configs that point a job at another repository are
// refused at the offending attribute; the same repository spelled another
// way is accepted.
func TestTargetsCorpus(t *testing.T) {
	refused, _ := filepath.Glob("testdata/targets/refused/*.hcl")
	same, _ := filepath.Glob("testdata/targets/same/*.hcl")
	if len(refused) < 15 || len(same) < 10 {
		t.Fatalf("corpus has %d refused and %d same configs; want at least 15 and 10", len(refused), len(same))
	}
	for _, f := range refused {
		t.Run(f, func(t *testing.T) {
			_, diags := load(t, f)
			line, col := marked(t, f)
			if !diags.HasErrors() {
				t.Fatalf("accepted; want an error at %d:%d", line, col)
			}
			for _, d := range diags.Errs() {
				d := d.(*hcl.Diagnostic)
				if d.Subject != nil && d.Subject.Start.Line == line && d.Subject.Start.Column == col {
					return
				}
			}
			t.Fatalf("no error at %d:%d: %v", line, col, diags)
		})
	}
	for _, f := range same {
		t.Run(f, func(t *testing.T) {
			if _, diags := load(t, f); diags.HasErrors() {
				t.Fatalf("refused: %v", diags)
			}
		})
	}
}

// Issue 7 acceptance 6: a relative location is relative to the config's
// directory, so the keys do not depend on the working directory.
func TestKeysIndependentOfWorkingDirectory(t *testing.T) {
	path, err := filepath.Abs("testdata/targets/same/17_relative_location.hcl")
	if err != nil {
		t.Fatal(err)
	}
	keyFrom := func(dir string) string {
		t.Chdir(dir)
		cfg, diags := load(t, path)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		r, ok := cfg.Repo(cfg.Repositories[0].Name)
		if !ok {
			t.Fatalf("repository %q not resolved", cfg.Repositories[0].Name)
		}
		return r.Key
	}
	a, b := keyFrom(t.TempDir()), keyFrom("/")
	if a != b {
		t.Fatalf("key from one directory %q, from another %q", a, b)
	}
	want := plugin.KeyFromIdentity("restic+local://" + strings.ToLower(Host()) + filepath.Join(filepath.Dir(path), "repos/main"))
	if a != want {
		t.Fatalf("key %q, want the key of the path beside the config, %q", a, want)
	}
}

// restic copy locks the source too, shared, and the locks are taken in
// key order.
func TestCopyLocksBoth(t *testing.T) {
	cfg, diags := load(t, "testdata/targets/same/10_copy_from_configured.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	spec, ok := cfg.JobSpec(cfg.Jobs[0].Name)
	if !ok || len(spec.Targets) != 2 {
		t.Fatalf("targets %+v (planned: %v); want two", spec.Targets, ok)
	}
	if !slices.IsSortedFunc(spec.Targets, func(a, b run.Target) int { return strings.Compare(a.Key, b.Key) }) {
		t.Errorf("targets not in key order: %+v", spec.Targets)
	}
	for _, tg := range spec.Targets {
		if tg.Mode != consullock.Shared || tg.Primary != (tg.Repository == "main") {
			t.Errorf("target %+v", tg)
		}
	}
	var from bool
	for _, kv := range spec.Env {
		from = from || kv == "RESTIC_FROM_REPOSITORY=/srv/restic/second"
	}
	if !from {
		t.Errorf("no RESTIC_FROM_REPOSITORY in %q", spec.Env)
	}
}

// The one environment order: inherited (without REPOLOCK_*, Consul
// credentials and tool-owned variables), repository env, job env, the
// tool's variables.
func TestEnvironment(t *testing.T) {
	p, err := plugin.Get("restic")
	if err != nil {
		t.Fatal(err)
	}
	got := Environment(
		[]string{"PATH=/bin", "RESTIC_REPOSITORY=/elsewhere", "RESTIC_PASSWORD=leak", "CONSUL_HTTP_TOKEN=t", "REPOLOCK_KEY=x", "A=0"},
		p, map[string]string{"A": "1", "B": "1"}, map[string]string{"B": "2"},
		[]string{"RESTIC_PASSWORD_FILE=/pw", "RESTIC_REPOSITORY=/srv/r"})
	want := []string{"PATH=/bin", "A=1", "B=2", "RESTIC_PASSWORD_FILE=/pw", "RESTIC_REPOSITORY=/srv/r"}
	if !slices.Equal(got, want) {
		t.Fatalf("Environment = %q, want %q", got, want)
	}
}

// Issue 16: none of repolock's Consul credentials and TLS settings reach
// the command; the agent's address does, and a job env that sets one
// passes it through.
func TestEnvironmentWithholdsConsulSettings(t *testing.T) {
	inherited := []string{"CONSUL_HTTP_ADDR=https://10.0.0.5:8501"}
	for _, k := range []string{"CONSUL_TOKEN", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_AUTH", "CONSUL_CLIENT_CERT",
		"CONSUL_CLIENT_KEY", "CONSUL_CACERT", "CONSUL_CAPATH", "CONSUL_TLS_SERVER_NAME", "CONSUL_HTTP_SSL", "CONSUL_HTTP_SSL_VERIFY", "NOMAD_TOKEN"} {
		inherited = append(inherited, k+"=secret-"+strings.ToLower(k))
	}
	got := Environment(inherited, nil, nil, map[string]string{"CONSUL_HTTP_TOKEN": "the-jobs-own"}, nil)
	want := []string{"CONSUL_HTTP_ADDR=https://10.0.0.5:8501", "CONSUL_HTTP_TOKEN=the-jobs-own"}
	if !slices.Equal(got, want) {
		t.Fatalf("Environment = %q, want %q", got, want)
	}
}

// Issue 7 acceptance 6 for flags: every refused key spelling is a usage
// error that shows an accepted spelling.
func TestExecKeys(t *testing.T) {
	for _, k := range []string{" ", "a b", ".", "..", "a\x01", "a/b", "a/", "../x", "a\tb", strings.Repeat("k", 129)} {
		_, err := Exec{Key: k, Args: []string{"true"}}.Plan()
		if err == nil || !strings.Contains(err.Error(), "-key") {
			t.Errorf("key %q: %v, want a -key error", k, err)
		}
	}
	if _, err := (Exec{Key: "a", Args: []string{"true"}}.Plan()); err != nil {
		t.Fatal(err)
	}
}

// `exec -repository` gets the same target check as a job.
func TestExecRepositoryConflict(t *testing.T) {
	cfg, diags := load(t, "testdata/targets/same/01_r_same_path.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, err := Exec{Repository: "main", Config: cfg, Args: []string{"restic", "-r", "/srv/restic/other", "backup", "/d"}}.Plan()
	if err == nil || !strings.Contains(err.Error(), "-r /srv/restic/other") {
		t.Fatalf("err = %v, want the conflict named", err)
	}
	spec, err := Exec{Repository: "main", Config: cfg, Args: []string{"restic", "-r", "/srv/restic/main/", "backup", "/d"}}.Plan()
	if err != nil || spec.Targets[0].Mode != consullock.Shared {
		t.Fatalf("same repository: %+v, %v", spec.Targets, err)
	}
}

// Review finding: the tool is given the directory the lock was derived
// for, not a relative path it would resolve against its own working
// directory.
func TestRelativeLocationReachesToolAbsolute(t *testing.T) {
	path, err := filepath.Abs("testdata/targets/same/17_relative_location.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := load(t, path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	spec, _ := cfg.JobSpec(cfg.Jobs[0].Name)
	want := "RESTIC_REPOSITORY=" + filepath.Join(filepath.Dir(path), "repos/main")
	if !slices.Contains(spec.Env, want) {
		t.Fatalf("env %q lacks %q", spec.Env, want)
	}
	for _, tg := range spec.Targets {
		if !slices.Contains(tg.Native.Env, want) {
			t.Errorf("native lock commands' env %q lacks %q", tg.Native.Env, want)
		}
	}
}

// Issue 17: a job holds its repository's lock and a slot of each limit it
// names, its repository names and the repositories it reads from name,
// once each, in the one global order
// (limits' keys, then repositories' keys): two copies in opposite
// directions and limit holders cannot deadlock. A per-host limit's key is
// its name and the host's.
func TestLimitTargetsInGlobalOrder(t *testing.T) {
	was := Host
	Host = func() string { return "web-1" }
	defer func() { Host = was }()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.hcl")
	src := `limit "z-nas" {
  slots = 2
}
limit "a-host" {
  slots    = 1
  per_host = true
}
repository "a" {
  tool     = "restic"
  location = "/srv/restic/a"
  limits   = ["z-nas"]
}
repository "b" {
  tool     = "restic"
  location = "/srv/restic/b"
}
job "a-to-b" {
  repository = "b"
  limits     = ["a-host"] # and z-nas, which its source repository a names
  command    = ["restic", "copy", "--from-repo", "/srv/restic/a"]
}
job "b-to-a" {
  repository = "a"
  limits     = ["z-nas", "a-host"]
  command    = ["restic", "copy", "--from-repo", "/srv/restic/b"]
}
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := load(t, path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var orders [][]string
	for _, job := range []string{"a-to-b", "b-to-a"} {
		spec, ok := cfg.JobSpec(job)
		if !ok {
			t.Fatalf("%s did not plan", job)
		}
		var order []string
		for _, tg := range spec.Targets {
			kind := "repo "
			if tg.Limit {
				kind = "limit "
				if tg.Mode != consullock.Shared || tg.Slots == 0 {
					t.Errorf("%s: limit target %+v, want a shared slot", job, tg)
				}
			}
			order = append(order, kind+tg.Key)
		}
		orders = append(orders, order)
		t.Logf("%s takes %s", job, strings.Join(order, ", "))
	}
	if len(orders[0]) != 4 || !slices.Equal(orders[0][:2], []string{"limit a-host.web-1", "limit z-nas"}) ||
		!slices.Equal(orders[0], orders[1]) {
		t.Errorf("the two copies take %v and %v: want both limits once, first, then both repositories, in one order", orders[0], orders[1])
	}
}

// A per-host limit's key: the host's name lowercased into key bytes, and
// cut with a hash when it would make the key too long.
func TestPerHostKey(t *testing.T) {
	long := strings.Repeat("h", 200)
	for host, want := range map[string]string{
		"web-1":         "host.web-1",
		"WEB_1.Example": "host.web_1.example",
		"odd host!":     "host.odd-host-",
	} {
		if got := PerHostKey("host", host); got != want {
			t.Errorf("PerHostKey(host, %q) = %q, want %q", host, got, want)
		}
	}
	a, b := PerHostKey("host", long+"a"), PerHostKey("host", long+"b")
	if len(a) != consullock.MaxKeyLen || a == b || consullock.CheckKey(a) != nil {
		t.Errorf("long hosts give %q and %q: want two valid keys of %d bytes", a, b, consullock.MaxKeyLen)
	}
}
