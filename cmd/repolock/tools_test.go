package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/history"
	"github.com/repolock/repolock/internal/testcluster"
)

const resticPassword = "correct-horse-4711-restic"

// toolEnv puts the restic under test (the pinned one, or RESTIC_BIN) first
// in PATH, so jobs that run `restic` run it.
func toolEnv(t *testing.T, agent *testcluster.Agent, token string) []string {
	return append(agent.Env(token), "PATH="+testcluster.PathDir(t, "restic")+":"+os.Getenv("PATH"), "HOME="+t.TempDir())
}

// resticRepo makes an initialised restic repository, a password file and
// a small data directory.
func resticRepo(t *testing.T) (repo, pwfile, data string) {
	t.Helper()
	dir := t.TempDir()
	repo, pwfile, data = filepath.Join(dir, "repo"), filepath.Join(dir, "pass"), filepath.Join(dir, "data")
	must(t, os.WriteFile(pwfile, []byte(resticPassword+"\n"), 0o600))
	must(t, os.MkdirAll(data, 0o755))
	for i := 0; i < 20; i++ {
		must(t, os.WriteFile(filepath.Join(data, fmt.Sprintf("f%d", i)), []byte(strings.Repeat(fmt.Sprint(i), 5000)), 0o644))
	}
	restic(t, repo, pwfile, nil, "init")
	return repo, pwfile, data
}

func restic(t *testing.T, repo, pwfile string, stdin *os.File, args ...string) string {
	t.Helper()
	cmd := exec.Command(testcluster.Binary(t, "restic"), args...)
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD_FILE="+pwfile, "RESTIC_CACHE_DIR="+filepath.Join(filepath.Dir(repo), "cache"))
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("restic %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeConfig writes a config file for the tests' jobs.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.hcl")
	must(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

// resticHead is the lock and repository blocks the restic tests share;
// shared marks the repository as shared storage (one key for every host).
func resticHead(repo, pwfile, unlock string, shared bool) string {
	return fmt.Sprintf(`
lock {
  ttl = "3s"
  kill_timeout = "1s"
  wait = "1m"
}
repository "r" {
  tool = "restic"
  location = %q
  password_file = %q
  unlock_native = %q
  shared_local = %t
  env = { RESTIC_CACHE_DIR = %q }
}
`, repo, pwfile, unlock, shared, filepath.Join(filepath.Dir(repo), "cache"))
}

func resticConfig(t *testing.T, repo, pwfile, data, unlock string) string {
	return writeConfig(t, resticHead(repo, pwfile, unlock, false)+fmt.Sprintf(`
job "backup" {
  repository = "r"
  command = ["restic", "backup", %q]
}
job "prune" {
  repository = "r"
  command = ["restic", "forget", "--prune", "--keep-last", "1"]
}
job "slow-backup" {
  repository = "r"
  mode = "exclusive"
  command = ["sh", "-c", "date +%%s%%N > $MARK.start; restic backup %s; sleep 0.5; date +%%s%%N > $MARK.end"]
}
`, data, data))
}

func lastRun(t *testing.T, c *api.Client, key string) history.Run {
	t.Helper()
	p, _, err := c.KV().Get(consullock.RepoPrefix("", key)+"last", nil)
	if err != nil || p == nil {
		t.Fatalf("no last run for %s: %v", key, err)
	}
	var l history.Run
	must(t, json.Unmarshal(p.Value, &l))
	return l
}

// repoKey asks `repolock validate -json` for the lock key of repository r.
func repoKey(t *testing.T, env []string, cfg string) string {
	t.Helper()
	p := start(t, env, "validate", "-config", cfg, "-json")
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("validate exit %d:\n%s", code, p.stderr)
	}
	var v struct {
		Repositories []struct {
			Name    string `json:"name"`
			LockKey string `json:"lock_key"`
		} `json:"repositories"`
	}
	out := p.stderr.String()
	must(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &v))
	return v.Repositories[0].LockKey
}

// Issue 3 acceptance 4: real restic under the lock, and native stale locks.
func TestRunResticJobs(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	env := toolEnv(t, srv, "")
	repo, pwfile, data := resticRepo(t)
	cfg := resticConfig(t, repo, pwfile, data, "never")
	key := repoKey(t, env, cfg)

	if code, out := runRepolock(t, env, "run", "-config", cfg, "backup"); code != 0 {
		t.Fatalf("backup exit %d:\n%s", code, out)
	}
	if snaps := restic(t, repo, pwfile, nil, "snapshots", "--json"); strings.Count(snaps, `"id"`) < 1 {
		t.Fatalf("no snapshot after the backup job: %s", snaps)
	}
	if l := lastRun(t, c, key); l.Mode != consullock.Shared || l.Exit != 0 || l.Class != "success" || l.Job != "backup" {
		t.Errorf("last run after backup: %+v", l)
	}
	if code, out := runRepolock(t, env, "run", "-config", cfg, "prune"); code != 0 {
		t.Fatalf("prune exit %d:\n%s", code, out)
	}
	if l := lastRun(t, c, key); l.Mode != consullock.Exclusive || l.Job != "prune" {
		t.Errorf("prune did not run exclusive: %+v", l)
	}

	// A restic killed with SIGKILL mid-backup leaves its lock behind.
	killResticMidBackup(t, repo, pwfile)
	code, out := runRepolock(t, env, "run", "-config", cfg, "prune")
	if code != 11 || !strings.Contains(out, "native lock busy") {
		t.Fatalf("prune over a stale restic lock with unlock_native=never: exit %d, want restic's 11 and the class \"native lock busy\":\n%s", code, out)
	}
	stale := resticConfig(t, repo, pwfile, data, "stale")
	code, out = runRepolock(t, env, "run", "-config", stale, "prune")
	if code != 0 || !strings.Contains(out, "clearing native locks") {
		t.Fatalf("prune with unlock_native=stale: exit %d, want 0 after clearing the lock:\n%s", code, out)
	}
	if locks, _ := os.ReadDir(filepath.Join(repo, "locks")); len(locks) != 0 {
		t.Errorf("%d restic locks left", len(locks))
	}
}

// killResticMidBackup starts a backup reading from a pipe that never ends,
// waits for its completed lock file, SIGKILLs it, and checks that the lock
// was left behind. Any file in locks/ is not enough: restic writes the
// lock to "<id>-tmp-XXXX" first and renames it once written (see
// resticLockIDs), and a kill before the rename leaves no lock, so that a
// prune afterwards rightly succeeds.
func killResticMidBackup(t *testing.T, repo, pwfile string) {
	t.Helper()
	r, w, err := os.Pipe()
	must(t, err)
	defer w.Close()
	cmd := exec.Command(testcluster.Binary(t, "restic"), "backup", "--stdin", "--stdin-filename", "stream")
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD_FILE="+pwfile, "RESTIC_CACHE_DIR="+filepath.Join(filepath.Dir(repo), "cache"))
	cmd.Stdin = r
	out := &testcluster.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	r.Close()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	var ids []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ids = resticLockIDs(repo); len(ids) > 0 {
			break
		}
		select {
		case <-exited:
			t.Fatalf("restic backup exited before it wrote its lock:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("restic wrote no complete lock within 20s:\n%s", out)
		}
	}
	_, _ = w.Write([]byte(strings.Repeat("x", 1<<16)))
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	<-exited
	// Nothing cleaned up after the kill: the completed lock, and nothing
	// else, is what the next command finds.
	entries, _ := os.ReadDir(filepath.Join(repo, "locks"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(ids) != 1 || len(names) != 1 || names[0] != ids[0] {
		t.Fatalf("after the SIGKILL the repository's locks/ holds %q, want only the killed backup's lock %q", names, ids)
	}
}

// Issue 3 acceptance 7: a job waits while another holds the repository,
// then runs; the two never overlap.
func TestRunWaitsForOtherJob(t *testing.T) {
	srv := testcluster.StartServer(t)
	env := toolEnv(t, srv, "")
	repo, pwfile, data := resticRepo(t)
	cfg := resticConfig(t, repo, pwfile, data, "never")
	dir := t.TempDir()
	a := start(t, append(env, "MARK="+filepath.Join(dir, "a")), "run", "-config", cfg, "slow-backup")
	waitFile(t, filepath.Join(dir, "a.start"), 20*time.Second)
	b := start(t, append(env, "MARK="+filepath.Join(dir, "b")), "run", "-config", cfg, "slow-backup")
	if code := a.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("first job exit %d:\n%s", code, a.stderr)
	}
	if code := b.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("second job exit %d:\n%s", code, b.stderr)
	}
	if !strings.Contains(b.stderr.String(), "lock busy; waiting") {
		t.Errorf("second job did not report waiting:\n%s", b.stderr)
	}
	aEnd := heartbeats(t, filepath.Join(dir, "a.end"))[0]
	bStart := heartbeats(t, filepath.Join(dir, "b.start"))[0]
	if bStart <= aEnd {
		t.Fatalf("overlap: second job started %s before the first ended", time.Duration(aEnd-bStart))
	}
	t.Logf("second job started %s after the first ended", time.Duration(bStart-aEnd))
}

// Issue 3 acceptance 6: no password or token in the argv or environment of
// any process repolock starts, in its logs, or in KV.
func TestNoSecretsLeak(t *testing.T) {
	srv := testcluster.StartServer(t, testcluster.WithACL())
	mgmt := srv.Client(t)
	// Exactly the policy the README documents.
	pol, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: "repolock", Rules: testcluster.ReadmePolicy}, nil)
	must(t, err)
	tok, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	must(t, err)
	env := toolEnv(t, srv, tok.SecretID)
	repo, pwfile, data := resticRepo(t)
	cfg := resticConfig(t, repo, pwfile, data, "stale")
	secrets := []string{resticPassword, tok.SecretID}

	env = append(env, "MARK="+filepath.Join(t.TempDir(), "mark"))
	p := start(t, env, "run", "-config", cfg, "-log-level", "debug", "slow-backup")
	seen := map[int]bool{}
	own, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
	for {
		for _, pid := range descendants(p.cmd.Process.Pid) {
			if seen[pid] {
				continue
			}
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if len(cmdline) == 0 {
				continue // gone before we could read it
			}
			if string(cmdline) == string(own) {
				// Forked but not yet exec'd: still repolock's own memory,
				// not what it hands on. Read it again after the exec.
				continue
			}
			seen[pid] = true
			for _, s := range secrets {
				if strings.Contains(string(cmdline), s) || strings.Contains(string(environ), s) {
					t.Errorf("pid %d (%q) carries a secret in its argv or environment", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
				}
			}
		}
		select {
		case <-p.done:
		default:
			time.Sleep(2 * time.Millisecond)
			continue
		}
		break
	}
	if p.code != 0 {
		t.Fatalf("job exit %d:\n%s", p.code, p.stderr)
	}
	if len(seen) < 2 {
		t.Fatalf("saw only %d processes started by repolock; want the guard and the command at least", len(seen))
	}
	t.Logf("checked argv and environment of %d processes", len(seen))
	pairs, _, err := mgmt.KV().List("repolock/", nil)
	must(t, err)
	if len(pairs) == 0 {
		t.Fatal("repolock wrote nothing to KV")
	}
	for _, s := range secrets {
		if strings.Contains(p.stderr.String(), s) {
			t.Errorf("a secret appears in repolock's logs")
		}
		for _, kv := range pairs {
			if strings.Contains(string(kv.Value), s) || strings.Contains(kv.Key, s) {
				t.Errorf("a secret appears in KV at %s", kv.Key)
			}
		}
	}
}

// descendants lists the processes below pid.
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, task := range tasks {
			b, _ := os.ReadFile(task)
			for _, f := range strings.Fields(string(b)) {
				var c int
				if _, err := fmt.Sscan(f, &c); err == nil {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out
}

const borgPassphrase = "borg-pass-8f3e-secret"

// borgEnv is what the test's own borg calls need (the jobs get theirs from
// the plugin). BORG_HOSTNAME_IS_UNIQUE=no stops borg from clearing a dead
// local process's lock by itself, as on a cluster of look-alike containers.
func borgEnv(t *testing.T, repo string) []string {
	return append(os.Environ(), "BORG_REPO="+repo, "BORG_PASSPHRASE="+borgPassphrase,
		"BORG_DISPLAY_PASSPHRASE=no", "BORG_BASE_DIR="+filepath.Join(filepath.Dir(repo), "borgbase"),
		"BORG_HOSTNAME_IS_UNIQUE=no")
}

// borgEnvFor puts build b first in PATH, so jobs that run `borg` run it.
func borgEnvFor(t *testing.T, b testcluster.Borg, agent *testcluster.Agent) []string {
	return append(agent.Env(""), "PATH="+b.Dir(t)+":"+os.Getenv("PATH"), "HOME="+t.TempDir())
}

// Issue 3 acceptance 5: borg create and prune under the lock; a leftover
// borg lock is broken with unlock_native = "all", and only once the
// cluster lock is held exclusively. Run against borg 1.4 and 1.2.
func TestRunBorgJobs(t *testing.T) {
	for _, b := range testcluster.Borgs(t) {
		t.Run("borg-"+b.Version, func(t *testing.T) { runBorgJobs(t, b) })
	}
}

func runBorgJobs(t *testing.T, b testcluster.Borg) {
	borg := b.Path
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	repo, data, head := borgRepo(t, b)
	cfg := writeConfig(t, head+fmt.Sprintf(`
job "create" {
  repository = "b"
  command = ["borg", "create", "::a-{now:%%Y%%m%%dT%%H%%M%%S.%%f}", %q]
}
job "prune" {
  repository = "b"
  command = ["borg", "prune", "--keep-last", "1"]
}
`, data))
	dir := filepath.Dir(repo)
	env := borgEnvFor(t, b, srv)
	key := repoKey(t, env, cfg)

	for _, job := range []string{"create", "create", "prune"} {
		if code, out := runRepolock(t, env, "run", "-config", cfg, job); code != 0 {
			t.Fatalf("%s exit %d:\n%s", job, code, out)
		}
		if l := lastRun(t, c, key); l.Mode != consullock.Exclusive || l.Job != job || l.Exit != 0 {
			t.Errorf("last run of %s: %+v", job, l)
		}
	}
	list := exec.Command(borg, "list", "--short")
	list.Env = borgEnv(t, repo)
	out, err := list.CombinedOutput()
	if err != nil || len(strings.Fields(string(out))) != 1 {
		t.Fatalf("after two creates and a prune --keep-last 1: %v\n%s", err, out)
	}

	// A borg killed while holding its lock leaves it behind.
	native := killBorgHoldingLock(t, borg, repo, dir)

	// Another repolock holds the repository: the job waits and leaves the
	// native lock alone meanwhile.
	ready := filepath.Join(dir, "ready")
	holder := start(t, env, "exec", "-key", key, "--", "sh", "-c", fmt.Sprintf("echo 1 > %q; sleep 2", ready))
	waitFile(t, ready, 10*time.Second)
	job := start(t, env, "run", "-config", cfg, "create")
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(native); err != nil {
			t.Fatal("the native borg lock was broken while another repolock held the repository")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := holder.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("holder exit %d:\n%s", code, holder.stderr)
	}
	if code := job.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("create over a leftover borg lock with unlock_native=all: exit %d:\n%s", code, job.stderr)
	}
	if !strings.Contains(job.stderr.String(), "break-lock") {
		t.Errorf("job did not report breaking the native lock:\n%s", job.stderr)
	}
	if _, err := os.Stat(native); err == nil {
		t.Error("native borg lock still there after the job")
	}
}

// killBorgHoldingLock runs borg with-lock until its command runs, checks
// the lock it holds, SIGKILLs borg and its command, and returns the lock
// directory it left behind.
//
// lock.exclusive appearing is not the moment to kill: borg 1.2 and 1.4
// (borg/locking.py) make the directory whole (a temporary directory with
// the owner's file in it, renamed into place), but only then write
// lock.roster, in place, and with-lock then rewrites the manifest before
// it starts its command. The command, which writes its marker atomically,
// runs only once all of that is done.
func killBorgHoldingLock(t *testing.T, borg, repo, dir string) string {
	t.Helper()
	held := filepath.Join(dir, "borg-holds")
	hold := exec.Command(borg, "with-lock", repo, "sh", "-c", `echo 1 > "$0.tmp" && mv "$0.tmp" "$0" && exec sleep 1000`, held)
	hold.Env = borgEnv(t, repo)
	out := &testcluster.SyncBuffer{}
	hold.Stdout, hold.Stderr = out, out
	hold.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, hold.Start())
	exited := make(chan struct{})
	go func() { _ = hold.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default: // not reaped yet, so the group id is still borg's
			_ = syscall.Kill(-hold.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(held); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("borg with-lock exited before it ran its command:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("borg with-lock did not run its command within 20s:\n%s", out)
		}
	}
	checkBorgLock(t, repo, hold.Process.Pid)
	must(t, syscall.Kill(-hold.Process.Pid, syscall.SIGKILL))
	<-exited
	checkBorgLock(t, repo, hold.Process.Pid) // nothing cleaned up after the kill
	return filepath.Join(repo, "lock.exclusive")
}

// checkBorgLock checks that borg process pid holds repo's lock exclusively
// as borg 1.x records it: lock.exclusive holds exactly the owner's file
// "<host id>.<pid>-<thread>", and lock.roster lists pid as an exclusive
// holder.
func checkBorgLock(t *testing.T, repo string, pid int) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repo, "lock.exclusive"))
	if err != nil || len(entries) != 1 || !strings.Contains(entries[0].Name(), fmt.Sprintf(".%d-", pid)) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("lock.exclusive holds %q (%v), want only the owner file of borg pid %d", names, err, pid)
	}
	b, err := os.ReadFile(filepath.Join(repo, "lock.roster"))
	var roster struct {
		Exclusive [][]any `json:"exclusive"`
	}
	if err != nil || json.Unmarshal(b, &roster) != nil || len(roster.Exclusive) != 1 ||
		len(roster.Exclusive[0]) != 3 || roster.Exclusive[0][1] != float64(pid) {
		t.Fatalf("lock.roster is %q (%v), want borg pid %d as its one exclusive holder", b, err, pid)
	}
}

// waitPath waits until p exists. It says nothing about what p holds: for
// a file or directory another process builds in place, wait for the state
// the test needs instead.
func waitPath(t *testing.T, p string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	t.Fatalf("%s did not appear within %s", p, limit)
}

// Issue 9 fault matrix: the ACL token is deleted mid-run. The next renewal
// is refused, the lock counts as lost at once (not at its deadline), the
// command is stopped, and repolock exits 76 naming the reason.
func TestACLTokenDeletedMidRun(t *testing.T) {
	srv := testcluster.StartServer(t, testcluster.WithACL())
	mgmt := srv.Client(t)
	pol, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: "repolock", Rules: testcluster.ReadmePolicy}, nil)
	must(t, err)
	tok, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	must(t, err)
	beats := filepath.Join(t.TempDir(), "beats")
	p := start(t, srv.Env(tok.SecretID), append(append([]string{"exec", "-key", "acl-deleted"}, fastFlags...),
		"--", "sh", "-c", heartbeatScript(beats, 0))...)
	waitFile(t, beats, 10*time.Second)
	deleted := time.Now()
	_, err = mgmt.ACL().TokenDelete(tok.AccessorID, nil)
	must(t, err)
	code := p.wait(t, 20*time.Second)
	if code != 76 || !strings.Contains(p.stderr.String(), "renewal refused by Consul's ACLs") {
		t.Fatalf("exit %d, want 76 naming the refused renewal:\n%s", code, p.stderr)
	}
	hb := heartbeats(t, beats)
	last := time.Unix(0, hb[len(hb)-1])
	// The renewal interval is 500ms: the command stops within one renewal
	// and the kill timeout, well before the TTL deadline (2s − margin).
	if d := last.Sub(deleted); d > 1500*time.Millisecond {
		t.Errorf("the command ran %s after the token was deleted", d)
	}
	t.Logf("token deleted; command's last heartbeat %s later; exit 76", last.Sub(deleted).Round(time.Millisecond))

	// A waiter whose token is deleted while it waits: no retrying until its
	// wait runs out, but 77 naming the ACLs, as for a token refused at once.
	tok2, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	must(t, err)
	start(t, srv.Env(testcluster.ManagementToken), append(append([]string{"exec", "-key", "acl-waiter"}, fastFlags...), "--", "sleep", "30")...)
	holderEntry(t, mgmt, "acl-waiter")
	w := start(t, srv.Env(tok2.SecretID), append(append([]string{"exec", "-key", "acl-waiter", "-wait", "60s"}, fastFlags...), "--", "true")...)
	time.Sleep(time.Second) // queued behind the holder
	_, err = mgmt.ACL().TokenDelete(tok2.AccessorID, nil)
	must(t, err)
	if code := w.wait(t, 20*time.Second); code != 77 || !strings.Contains(w.stderr.String(), "ACL") {
		t.Fatalf("waiter whose token was deleted exited %d, want 77 naming the ACLs:\n%s", code, w.stderr)
	}
	if strings.Contains(w.stderr.String(), tok2.SecretID) {
		t.Errorf("the refused token appears in the waiter's output:\n%s", w.stderr)
	}
}
