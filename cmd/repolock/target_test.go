package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// Issue 7 acceptance 4 through the CLI: every config of the corpus that
// points a job at another repository exits 78 with file:line:column of
// the offending attribute and its source line; every config that names the
// same repository another way is valid.
func TestValidateTargetsCorpus(t *testing.T) {
	refused, _ := filepath.Glob("../../internal/plan/testdata/targets/refused/*.hcl")
	same, _ := filepath.Glob("../../internal/plan/testdata/targets/same/*.hcl")
	if len(refused) < 15 || len(same) < 10 {
		t.Fatalf("corpus has %d refused and %d same configs; want at least 15 and 10", len(refused), len(same))
	}
	for _, f := range refused {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, out := runRepolock(t, nil, "validate", "-config", f)
			src, err := os.ReadFile(f)
			must(t, err)
			var loc, line string
			for i, l := range strings.Split(string(src), "\n") {
				if strings.Contains(l, "# offending") {
					eq := strings.Index(l, "=")
					col := eq + 1 + len(l[eq+1:]) - len(strings.TrimLeft(l[eq+1:], " ")) + 1
					loc, line = fmt.Sprintf("%s:%d:%d:", f, i+1, col), strings.TrimSpace(strings.Split(l, "#")[0])
				}
			}
			if code != 78 || !strings.Contains(out, loc) || !strings.Contains(out, line) {
				t.Fatalf("exit %d, want 78 with %s and the line %q:\n%s", code, loc, line, out)
			}
		})
	}
	for _, f := range same {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if code, out := runRepolock(t, nil, "validate", "-config", f); code != 0 {
				t.Fatalf("exit %d, want 0:\n%s", code, out)
			}
		})
	}
}

// Issue 7 acceptance 6: the same config gives the same lock keys from any
// working directory; refused key spellings get their exit code and a
// message showing an accepted spelling; and KV holds nothing outside
// <prefix>/repos/<key>/ after runs.
func TestKeysAndWorkingDirectory(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	env := srv.Env("")
	cfg := writeConfig(t, `
repository "rel" {
  tool = "exec"
  location = "./data/repo"
}
job "j" {
  repository = "rel"
  mode = "exclusive"
  command = ["true"]
}
`)
	keys := map[string]bool{}
	for _, dir := range []string{t.TempDir(), "/", filepath.Dir(cfg)} {
		p := startIn(t, dir, env, "validate", "-config", cfg, "-json")
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("validate from %s: exit %d:\n%s", dir, code, p.stderr)
		}
		out := p.stderr.String()
		i := strings.Index(out, `"lock_key": "`)
		keys[strings.Split(out[i+len(`"lock_key": "`):], `"`)[0]] = true
	}
	if len(keys) != 1 {
		t.Fatalf("one config gave the keys %v from three working directories", keys)
	}

	for _, k := range []string{"", " ", "a b", ".", "..", "a\x01b", "a/b", "a/", "./a", "a\tb", strings.Repeat("k", 129)} {
		code, out := runRepolock(t, env, "exec", "-key", k, "--", "true")
		if code != 64 || !strings.Contains(out, "-key") || !strings.Contains(out, "for example") && !strings.Contains(out, "use only") {
			t.Errorf("-key %q: exit %d, want 64 and a message with an accepted spelling:\n%s", k, code, out)
		}
	}
	for _, k := range []string{"..", "a b", "a/b"} {
		bad := writeConfig(t, fmt.Sprintf("repository \"r\" {\n  tool = \"exec\"\n  location = \"/x\"\n  lock_key = %q\n}\n", k))
		code, out := runRepolock(t, env, "validate", "-config", bad)
		if code != 78 || !strings.Contains(out, bad+":4:") || !strings.Contains(out, "for example") {
			t.Errorf("lock_key %q: exit %d, want 78 at line 4 with an accepted spelling:\n%s", k, code, out)
		}
	}

	for _, args := range [][]string{
		{"run", "-config", cfg, "j"},
		{"exec", "-key", "plain", "--", "true"},
		{"exec", "-key", "other-key", "-mode", "shared", "--", "sh", "-c", "exit 3"},
	} {
		runRepolock(t, env, args...)
	}
	pairs, _, err := c.KV().List("", nil)
	must(t, err)
	if len(pairs) < 3 {
		t.Fatalf("KV holds %d keys after three runs, want their last records", len(pairs))
	}
	for _, p := range pairs {
		if p.Key == consullock.EpochKey("") {
			continue // written by the first grant of a store (and by the harness)
		}
		rest, ok := strings.CutPrefix(p.Key, "repolock/repos/")
		key, sub, _ := strings.Cut(rest, "/")
		if !ok || consullock.CheckKey(key) != nil || (sub != "last" && !strings.HasPrefix(sub, "lock/")) {
			t.Errorf("KV key %q is outside <prefix>/repos/<key>/", p.Key)
		}
	}
}

// Issue 7 acceptance 5: restic copy from a configured repository holds both
// locks; a prune of the source waits for it; two copies in opposite
// directions both complete.
func TestCopyHoldsBothLocks(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	env := toolEnv(t, srv, "")
	repoA, pwA, data := resticRepo(t)
	repoB, pwB, _ := resticRepo(t)
	restic(t, repoA, pwA, nil, "backup", data)
	restic(t, repoB, pwB, nil, "backup", data)
	cache := filepath.Join(t.TempDir(), "cache")
	cfg := writeConfig(t, fmt.Sprintf(`
lock {
  ttl = "3s"
  kill_timeout = "1s"
  wait = "2m"
}
repository "a" {
  tool = "restic"
  location = %q
  password_file = %q
  env = { RESTIC_CACHE_DIR = %q }
}
repository "b" {
  tool = "restic"
  location = %q
  password_file = %q
  env = { RESTIC_CACHE_DIR = %q }
}
job "a-to-b" {
  repository = "b"
  command = ["restic", "copy", "--from-repo", %q]
}
job "b-to-a" {
  repository = "a"
  command = ["restic", "copy", "--from-repo", %q]
}
job "prune-a" {
  repository = "a"
  command = ["restic", "forget", "--prune", "--keep-last", "1"]
}
`, repoA, pwA, cache, repoB, pwB, cache, repoA, repoB))
	keyOf := func(name string) string {
		p := start(t, env, "validate", "-config", cfg, "-json")
		p.wait(t, 10*time.Second)
		out := p.stderr.String()
		i := strings.Index(out, `"name": "`+name+`"`)
		j := strings.Index(out[i:], `"lock_key": "`) + i + len(`"lock_key": "`)
		return strings.Split(out[j:], `"`)[0]
	}
	keyA, keyB := keyOf("a"), keyOf("b")

	copyAB := start(t, env, "run", "-config", cfg, "a-to-b")
	// Both locks are held while the copy runs.
	holding := func(key string) bool {
		pairs, _, _ := c.KV().List(consullock.RepoPrefix("", key)+"lock/", nil)
		for _, p := range pairs {
			if p.Session != "" && strings.Contains(string(p.Value), `"holding"`) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(20 * time.Second); !(holding(keyA) && holding(keyB)); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the copy never held both locks:\n%s", copyAB.stderr)
		}
	}
	prune := start(t, env, "run", "-config", cfg, "prune-a")
	if code := copyAB.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("copy a→b exit %d:\n%s", code, copyAB.stderr)
	}
	if code := prune.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("prune of the source exit %d:\n%s", code, prune.stderr)
	}
	if !strings.Contains(prune.stderr.String(), "lock busy; waiting") {
		t.Errorf("the prune of the source did not wait for the copy:\n%s", prune.stderr)
	}
	if last := lastRun(t, c, keyA); last.Job != "prune-a" || last.Started.Before(lastRun(t, c, keyB).Ended) {
		t.Errorf("prune of a started %s, before the copy from a ended %s", last.Started, lastRun(t, c, keyB).Ended)
	}

	ab := start(t, env, "run", "-config", cfg, "a-to-b")
	ba := start(t, env, "run", "-config", cfg, "b-to-a")
	for name, p := range map[string]*proc{"a-to-b": ab, "b-to-a": ba} {
		if code := p.wait(t, 90*time.Second); code != 0 {
			t.Fatalf("%s in opposite directions: exit %d:\n%s", name, code, p.stderr)
		}
	}
}

// Issue 7: `repolock exec -repository NAME` gets the jobs' target check at
// run time: a command naming another repository exits 64 naming the
// conflict, before anything touched Consul.
func TestExecRepositoryTargetCheck(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	cfg := writeConfig(t, `
repository "main" {
  tool = "restic"
  location = "/srv/restic/main"
}
`)
	code, out := runRepolock(t, srv.Env(""), "exec", "-config", cfg, "-repository", "main", "--", "restic", "-r", "/srv/restic/other", "snapshots")
	if code != 64 || !strings.Contains(out, "-r /srv/restic/other") || !strings.Contains(out, `"main"`) {
		t.Fatalf("exit %d, want 64 naming the conflict:\n%s", code, out)
	}
	if pairs, _, _ := c.KV().List("repolock/repos/", nil); len(pairs) != 0 {
		t.Fatalf("a refused exec wrote to KV: %v", pairs)
	}
	code, out = runRepolock(t, srv.Env(""), "exec", "-config", cfg, "-repository", "main", "--", "restic", "--repository-file", "/etc/r", "snapshots")
	if code != 64 || !strings.Contains(out, "--repository-file") {
		t.Fatalf("exit %d, want 64 refusing --repository-file:\n%s", code, out)
	}
}
