package main_test

import (
	"bufio"
	"encoding/json"
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

// healConfig is a restic repository with unlock_native = policy, a backup,
// a slow exclusive check (its reads are rate-limited, so it can be killed
// mid-run), a backup reading stdin and a prune.
func healConfig(t *testing.T, repo, pwfile, data, policy string) string {
	// The tests' "host B" is a UTS namespace on this machine, reaching the
	// repository as shared storage would: one lock key for both hosts.
	return writeConfig(t, resticHead(repo, pwfile, policy, true)+fmt.Sprintf(`
job "backup" {
  repository = "r"
  command = ["restic", "backup", %q]
}
job "slow-check" {
  repository = "r"
  command = ["restic", "check", "--read-data", "--limit-download", "4"]
}
job "stdin-backup" {
  repository = "r"
  command = ["restic", "backup", "--stdin", "--stdin-filename", "stream"]
}
job "prune" {
  repository = "r"
  command = ["restic", "forget", "--prune", "--keep-last", "1"]
}
`, data))
}

// resticLocks lists the repository's restic lock files: everything in
// locks/ but the temporary files restic is still writing. It is what the
// tests count as left behind.
func resticLocks(repo string) []string {
	entries, _ := os.ReadDir(filepath.Join(repo, "locks"))
	var ids []string
	for _, e := range entries {
		if !strings.Contains(e.Name(), "-tmp-") { // being written: not a lock yet
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// resticLockIDs lists the repository's completed restic locks. restic's
// local backend (internal/backend/local/local.go, v0.19.1) writes every
// file, locks included, to "<name>-tmp-XXXX" in the same folder, syncs and
// closes it, and only then renames it to its final name, the 64 hex digits
// of its ID. A file under such a name is therefore whole (the rename is
// atomic); a restic killed before the rename leaves no lock at all, only,
// at most, a temporary file that no restic reads as a lock.
func resticLockIDs(repo string) []string {
	entries, _ := os.ReadDir(filepath.Join(repo, "locks"))
	var ids []string
	for _, e := range entries {
		if !isResticID(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err != nil || fi.Size() == 0 {
			continue
		}
		ids = append(ids, e.Name())
	}
	return ids
}

// isResticID reports whether name is a full restic ID: 64 lower-case hex
// digits (restic.ID.String).
func isResticID(name string) bool {
	if len(name) != 64 {
		return false
	}
	for _, c := range name {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// waitLocks waits until the repository has a completed restic lock (see
// resticLockIDs), so that a kill from then on leaves that lock behind.
func waitLocks(t *testing.T, repo string) []string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ids := resticLockIDs(repo); len(ids) > 0 {
			return ids
		}
	}
	t.Fatal("restic wrote no complete lock within 30s")
	return nil
}

func needUnshare(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal("unshare not found: install util-linux (the test runs restic under another host name in a UTS namespace)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the host-B test needs root for a UTS namespace (unshare -u); run make test as root")
	}
	return p
}

// killedOnHostB runs the slow exclusive check under repolock on "hostB"
// (a UTS namespace), and SIGKILLs repolock once restic holds its lock: the
// guard then SIGKILLs restic, so nothing cleans up, as after a crash of
// the host. It returns the lock restic left.
func killedOnHostB(t *testing.T, env []string, cfg, repo string) string {
	t.Helper()
	unshare := needUnshare(t)
	cmd := exec.Command(unshare, "-u", "sh", "-c", `hostname hostB && exec "$0" "$@"`, binary, "run", "-config", cfg, "slow-check")
	cmd.Env = append(testcluster.CleanEnv(), env...)
	out := &testcluster.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	ids := waitLocks(t, repo)
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	// The guard kills restic at once; the lock file stays.
	time.Sleep(200 * time.Millisecond)
	if got := resticLocks(repo); len(got) != 1 || got[0] != ids[0] {
		t.Fatalf("after the kill the repository has locks %q, want the one of the killed check %q:\n%s", got, ids, out)
	}
	return ids[0]
}

// Issue 7 acceptance 1: a restic check killed on another host leaves an
// exclusive lock; with unlock_native = "all" the next backup heals it and
// exits 0, naming the removed lock in its log and last record. With
// "stale" (the lock is fresh and from another host) and "never" it exits
// 11 with an error naming the fix.
func TestHealStaleNativeLockFromOtherHost(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	env := toolEnv(t, srv, "")
	// Each policy on a repository of its own, the three at once: each
	// waits for the killed check's session to expire.
	for _, policy := range []string{"never", "stale"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			repo, pwfile, data := resticRepo(t)
			lockID := killedOnHostB(t, env, healConfig(t, repo, pwfile, data, "all"), repo)
			code, out := runRepolock(t, env, "run", "-config", healConfig(t, repo, pwfile, data, policy), "backup")
			if code != 11 || !strings.Contains(out, `unlock_native = "all"`) || !strings.Contains(out, "restic unlock --remove-all") {
				t.Fatalf("unlock_native = %q: exit %d, want 11 and an error naming the fix:\n%s", policy, code, out)
			}
			if got := resticLocks(repo); len(got) != 1 || got[0] != lockID {
				t.Fatalf("unlock_native = %q removed the lock of another host: %q", policy, got)
			}
			t.Logf("unlock_native = %q: exit 11; %s", policy, lastLine(out, "repolock: "))
		})
	}
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		repo, pwfile, data := resticRepo(t)
		all := healConfig(t, repo, pwfile, data, "all")
		key := repoKey(t, env, all)
		lockID := killedOnHostB(t, env, all, repo)
		code, out := runRepolock(t, env, "run", "-config", all, "backup")
		if code != 0 {
			t.Fatalf("backup over a stale lock of hostB with unlock_native = all: exit %d, want 0:\n%s", code, out)
		}
		if !strings.Contains(out, "removed native lock") || !strings.Contains(out, lockID) || !strings.Contains(out, "hostB") {
			t.Errorf("the log does not name the removed lock %s of hostB:\n%s", lockID, out)
		}
		l := lastRun(t, c, key)
		if l.Exit != 0 || l.Attempts != 2 || len(l.NativeLocksCleared) != 1 {
			t.Fatalf("last run %+v, want exit 0, 2 attempts and one cleared lock", l)
		}
		if n := l.NativeLocksCleared[0]; n.ID != lockID || n.Host != "hostB" || !n.Exclusive || n.PID == 0 || n.Time.IsZero() {
			t.Errorf("cleared lock recorded as %+v", n)
		}
		if got := resticLocks(repo); len(got) != 0 {
			t.Errorf("restic locks left: %q", got)
		}
	})
}

// lastLine is the last line of out that contains s.
func lastLine(out, s string) string {
	var last string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			last = l
		}
	}
	return last
}

// Issue 7 acceptance 2: the heal waits for the exclusive grant, so the
// unlock runs only after another holder of the repository has ended.
func TestHealWaitsForOtherHolder(t *testing.T) {
	srv := testcluster.StartServer(t)
	env := toolEnv(t, srv, "")
	repo, pwfile, data := resticRepo(t)
	cfg := healConfig(t, repo, pwfile, data, "all")
	key := repoKey(t, env, cfg)
	unshare := needUnshare(t)

	for trial := 1; trial <= 3; trial++ {
		// A stale exclusive lock of a check killed on hostB.
		check := exec.Command(unshare, "-u", "sh", "-c", `hostname hostB && exec "$0" "$@"`,
			testcluster.Binary(t, "restic"), "check", "--read-data", "--limit-download", "4")
		check.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD_FILE="+pwfile,
			"RESTIC_CACHE_DIR="+filepath.Join(filepath.Dir(repo), "cache"))
		must(t, check.Start())
		waitLocks(t, repo)
		must(t, check.Process.Signal(syscall.SIGKILL))
		_ = check.Wait()

		// Another repolock holds the repository shared, writing heartbeats.
		dir := t.TempDir()
		beats := filepath.Join(dir, "beats")
		holder := start(t, env, append(append([]string{"exec", "-key", key, "-mode", "shared"}, fastFlags...),
			"--", "sh", "-c", heartbeatScript(beats, 60))...)
		waitFile(t, beats, 10*time.Second)
		backup := start(t, env, "run", "-config", cfg, "-log-json", "backup")
		if code := holder.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("holder exit %d:\n%s", code, holder.stderr)
		}
		if code := backup.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("trial %d: backup exit %d, want 0 after healing:\n%s", trial, code, backup.stderr)
		}
		hb := heartbeats(t, beats)
		lastBeat := time.Unix(0, hb[len(hb)-1])
		cleared := logTime(t, backup.stderr.String(), "clearing native locks under the cluster lock")
		if !cleared.After(lastBeat) {
			t.Fatalf("trial %d: native locks cleared at %s, before the other holder's last heartbeat at %s",
				trial, cleared.Format(time.RFC3339Nano), lastBeat.Format(time.RFC3339Nano))
		}
		t.Logf("trial %d: unlock %s after the other holder's last heartbeat", trial, cleared.Sub(lastBeat).Round(time.Millisecond))
		if got := resticLocks(repo); len(got) != 0 {
			t.Fatalf("restic locks left: %q", got)
		}
	}
}

// logTime is the time of the first JSON log line whose message is msg.
func logTime(t *testing.T, out, msg string) time.Time {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Time    string `json:"@timestamp"`
			Message string `json:"@message"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Message != msg {
			continue
		}
		ts, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", line.Time)
		if err != nil {
			t.Fatalf("log time %q: %v", line.Time, err)
		}
		return ts
	}
	t.Fatalf("no log line %q in:\n%s", msg, out)
	return time.Time{}
}

// Issue 7 acceptance 3: when only the command is SIGKILLed (restic mid-
// backup, or mid-check), repolock clears its stale lock before it
// releases, and the next exclusive job needs no unlock.
func TestKilledCommandLeavesNoNativeLock(t *testing.T) {
	srv := testcluster.StartServer(t)
	env := toolEnv(t, srv, "")
	repo, pwfile, data := resticRepo(t)
	stale := healConfig(t, repo, pwfile, data, "stale")
	never := healConfig(t, repo, pwfile, data, "never")

	for _, job := range []string{"stdin-backup", "slow-check"} {
		r, w, err := os.Pipe()
		must(t, err)
		p := startWithStdin(t, env, r, "run", "-config", stale, job)
		r.Close()
		waitLocks(t, repo)
		pid := resticPid(t, p.cmd.Process.Pid)
		must(t, syscall.Kill(pid, syscall.SIGKILL))
		code := p.wait(t, 60*time.Second)
		w.Close()
		if code != 128+int(syscall.SIGKILL) {
			t.Fatalf("%s: exit %d, want 137 (the command's death by SIGKILL):\n%s", job, code, p.stderr)
		}
		if got := resticLocks(repo); len(got) != 0 {
			t.Fatalf("%s: restic locks left after repolock exited: %q\n%s", job, got, p.stderr)
		}
		if code, out := runRepolock(t, env, "run", "-config", never, "prune"); code != 0 {
			t.Fatalf("prune after the killed %s, with unlock_native = never: exit %d:\n%s", job, code, out)
		}
	}
}

// resticPid finds the restic process below pid.
func resticPid(t *testing.T, pid int) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, d := range descendants(pid) {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", d)); strings.HasPrefix(filepath.Base(strings.Split(string(b), "\x00")[0]), "restic") {
				return d
			}
		}
	}
	t.Fatal("no restic process below repolock")
	return 0
}
