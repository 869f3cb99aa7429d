package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/repolock/repolock/internal/testcluster"
)

// Issue 14 acceptance 4: borg 1.4 reports a lock it cannot get as the
// modern exit code 73, which repolock heals on. A borg killed on another
// host (BORG_HOST_ID, BORG_HOSTNAME_IS_UNIQUE=no: borg will not clear it by
// itself) leaves its lock; with unlock_native = "all":
//   - a list (shared) exits 73, and repolock heals: it queues exclusively,
//     breaks the lock, names it in its log and runs the list again;
//   - a create (exclusive) clears it before it starts.
//
// Both exit 0, and the last record names the lock. borg 1.2 exits 2 for a
// busy lock, which says nothing about the cause, so it is not healed.
func TestHealStaleBorgLock(t *testing.T) {
	var b14 []testcluster.Borg
	for _, b := range testcluster.Borgs(t) {
		if !strings.HasPrefix(b.Version, "1.2.") && !strings.HasPrefix(b.Version, "1.1.") {
			b14 = append(b14, b)
		}
	}
	if len(b14) == 0 {
		t.Skip("healing needs borg ≥ 1.4's modern exit codes; BORG_BIN names a borg 1.2")
	}
	b := b14[0]
	t.Logf("borg %s at %s", b.Version, b.Path)
	srv := testcluster.StartServer(t)
	repo, data, head := borgRepo(t, b)
	borg := func(args ...string) {
		t.Helper()
		cmd := exec.Command(b.Path, args...)
		cmd.Env = borgEnv(t, repo)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("borg %v: %v\n%s", args, err, out)
		}
	}
	borg("create", "::first", data)
	cfg := writeConfig(t, head+fmt.Sprintf(`
job "list" {
  repository = "b"
  command = ["borg", "list", "--lock-wait", "1"]
}
job "create" {
  repository = "b"
  command = ["borg", "create", "::second", %q]
}
`, data))
	env := borgEnvFor(t, b, srv)
	key := repoKey(t, env, cfg)

	for _, c := range []struct{ job, how string }{
		{"list", "native lock busy"}, // exit 73, then healed
		{"create", "clearing native locks under the cluster lock"},
	} {
		holder := killedBorgHolder(t, b, repo)
		code, out := runRepolock(t, env, "run", "-config", cfg, c.job)
		if code != 0 {
			t.Fatalf("%s over a stale borg %s lock: exit %d, want 0:\n%s", c.job, b.Version, code, out)
		}
		for _, want := range []string{c.how, "removed native lock", holder} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: the log does not say %q:\n%s", c.job, want, out)
			}
		}
		if _, err := os.Stat(filepath.Join(repo, "lock.exclusive")); err == nil {
			t.Errorf("%s: borg's lock is still there", c.job)
		}
		l := lastRun(t, srv.Client(t), key)
		named := false
		for _, n := range l.NativeLocksCleared {
			named = named || n.ID == holder
		}
		if l.Exit != 0 || !named {
			t.Errorf("%s: last record %+v does not name %s", c.job, l, holder)
		}
	}
}

// killedBorgHolder leaves the lock of a borg SIGKILLed "on another host"
// in repo, and returns the holder's name as borg wrote it in
// lock.exclusive/. borg renames a complete lock folder into place, so the
// folder's appearance means the lock is whole.
func killedBorgHolder(t *testing.T, b testcluster.Borg, repo string) string {
	t.Helper()
	hold := exec.Command(b.Path, "with-lock", repo, "sleep", "1000")
	hold.Env = append(borgEnv(t, repo), "BORG_HOST_ID=otherhost@4711")
	hold.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, hold.Start())
	waitPath(t, filepath.Join(repo, "lock.exclusive"), 20*time.Second)
	must(t, syscall.Kill(-hold.Process.Pid, syscall.SIGKILL))
	_ = hold.Wait()
	want := fmt.Sprintf("otherhost@4711.%d-0", hold.Process.Pid)
	if _, err := os.Stat(filepath.Join(repo, "lock.exclusive", want)); err != nil {
		t.Fatalf("the killed borg's lock is not %s: %v", want, err)
	}
	return want
}

// borgRepo makes a borg repository initialised by build b, its passphrase
// file and a small data folder, and the config head the borg tests share:
// the lock timing and repository "b" with unlock_native = "all" (the
// BORG_* of a host that is not unique: borg clears no lock by itself).
func borgRepo(t *testing.T, b testcluster.Borg) (repo, data, head string) {
	t.Helper()
	dir := t.TempDir()
	repo, data = filepath.Join(dir, "repo"), filepath.Join(dir, "data")
	pwfile := filepath.Join(dir, "pass")
	must(t, os.WriteFile(pwfile, []byte(borgPassphrase+"\n"), 0o600))
	must(t, os.MkdirAll(data, 0o755))
	must(t, os.WriteFile(filepath.Join(data, "file"), []byte("borg data"), 0o644))
	cmd := exec.Command(b.Path, "init", "--encryption=repokey")
	cmd.Env = borgEnv(t, repo)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("borg init: %v\n%s", err, out)
	}
	return repo, data, fmt.Sprintf(`
lock {
  ttl = "3s"
  kill_timeout = "1s"
  wait = "1m"
}
repository "b" {
  tool = "borg"
  location = %q
  password_file = %q
  unlock_native = "all"
  env = {
    BORG_BASE_DIR = %q
    BORG_HOSTNAME_IS_UNIQUE = "no"
  }
}
`, repo, pwfile, filepath.Join(dir, "borgbase"))
}
