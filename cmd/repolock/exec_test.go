package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// Acceptance 1: two repolock exec on one key never run their commands at
// the same time, and the waiting one starts promptly after the first exits.
func TestExecMutualExclusion(t *testing.T) {
	srv := testcluster.StartServer(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	pa := start(t, srv.Env(""), "exec", "-key", "mutex", "--", "sh", "-c", heartbeatScript(a, 40))
	waitFile(t, a, 10*time.Second)
	pb := start(t, srv.Env(""), "exec", "-key", "mutex", "-wait", "30s", "--", "sh", "-c", heartbeatScript(b, 10))
	if code := pa.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("first exited %d:\n%s", code, pa.stderr)
	}
	if code := pb.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("second exited %d:\n%s", code, pb.stderr)
	}
	ha, hb := heartbeats(t, a), heartbeats(t, b)
	lastA, firstB := ha[len(ha)-1], hb[0]
	if firstB <= lastA {
		t.Fatalf("overlap: second's first heartbeat %d is not after first's last %d", firstB, lastA)
	}
	handoff := time.Duration(firstB - lastA)
	t.Logf("handoff between holders: %s", handoff)
	if handoff > 2*time.Second {
		t.Errorf("waiting holder started %s after the first ended; want promptly (< 2s)", handoff)
	}
}

// Acceptance 2: the holder's agent is frozen; a competitor on the server is
// granted only after the holder's last heartbeat, and the holder exits 76.
// Issue 17 acceptance 7: the same for a slot of a semaphore (-slots 1).
func TestExecPartitionFencing(t *testing.T) {
	srv := testcluster.StartServer(t)
	cli := testcluster.StartClient(t, srv)
	const trials = 3 // each kind; the fault matrix (internal/soak) repeats the partition on a cluster
	var minGap time.Duration = 1 << 62
	for i := 0; i < 2*trials; i++ {
		dir := t.TempDir()
		hold, comp := filepath.Join(dir, "holder"), filepath.Join(dir, "competitor")
		key := fmt.Sprintf("partition-%d", i)
		kind := append([]string{"exec", "-key", key}, fastFlags...)
		if i%2 == 1 {
			kind = append(kind, "-slots", "1")
		}
		waitAgentUsable(t, cli)
		holder := start(t, cli.Env(""), append(slices.Clone(kind), "--", "sh", "-c", heartbeatScript(hold, 0))...)
		waitFile(t, hold, 10*time.Second)
		cli.Freeze(t)
		competitor := start(t, srv.Env(""), append(slices.Clone(kind), "-wait", "30s", "--", "sh", "-c", heartbeatScript(comp, 5))...)
		code := holder.wait(t, 20*time.Second)
		if c := competitor.wait(t, 30*time.Second); c != 0 {
			cli.Thaw(t)
			t.Fatalf("trial %d: competitor exited %d:\n%s", i, c, competitor.stderr)
		}
		cli.Thaw(t)
		if code != 76 {
			t.Fatalf("trial %d: holder exited %d, want 76:\n%s", i, code, holder.stderr)
		}
		hh, hc := heartbeats(t, hold), heartbeats(t, comp)
		gap := time.Duration(hc[0] - hh[len(hh)-1])
		if gap <= 0 {
			t.Fatalf("trial %d: OVERLAP: competitor's first heartbeat is %s before the holder's last", i, -gap)
		}
		minGap = min(minGap, gap)
		t.Logf("trial %d (%s): competitor started %s after the holder's last heartbeat", i, []string{"lock", "slot"}[i%2], gap)
	}
	t.Logf("%d trials of a lock and %d of a slot, 0 overlaps, smallest gap %s", trials, trials, minGap)
}

// waitAgentUsable waits until a (thawed) agent serves sessions again.
func waitAgentUsable(t *testing.T, a *testcluster.Agent) {
	t.Helper()
	c := a.Client(t)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		id, _, err := c.Session().CreateNoChecks(&api.SessionEntry{TTL: "10s"}, nil)
		if err == nil {
			_, _ = c.Session().Destroy(id, nil)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("agent %s not usable again:\n%s", a.Name, a.Logs())
}

// holderEntry waits for the holding record under key and returns its KV pair.
func holderEntry(t *testing.T, c *api.Client, key string) (*api.KVPair, consullock.Record) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pairs, _, err := c.KV().List(consullock.RepoPrefix("", key)+"lock/", nil)
		if err == nil {
			for _, p := range pairs {
				var r consullock.Record
				if json.Unmarshal(p.Value, &r) == nil && r.State == consullock.StateHolding {
					return p, r
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no holder record for %s", key)
	return nil, consullock.Record{}
}

// Acceptance 3: a session destroyed from outside: the command's group gets
// the kill signal within 1 s and repolock exits 76.
func TestExecExternalDestroy(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
	script := fmt.Sprintf(`trap 'date +%%s%%N > %q; exit 0' TERM; echo 1 > %q; while :; do sleep 0.01; done`, got, ready)
	p := start(t, srv.Env(""), "exec", "-key", "destroy", "--", "sh", "-c", script)
	waitFile(t, ready, 10*time.Second)
	_, rec := holderEntry(t, c, "destroy")
	destroyed := time.Now()
	if _, err := c.Session().Destroy(rec.Session, nil); err != nil {
		t.Fatal(err)
	}
	waitFile(t, got, 5*time.Second)
	delay := time.Unix(0, heartbeats(t, got)[0]).Sub(destroyed) // a time that does not parse fails, not 1970
	t.Logf("kill signal reached the command %s after the destroy", delay)
	if delay > time.Second {
		t.Errorf("kill signal after %s, want within 1s", delay)
	}
	if code := p.wait(t, 10*time.Second); code != 76 {
		t.Fatalf("exit %d, want 76 (even though the command exited 0 on TERM):\n%s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "lock lost") {
		t.Errorf("stderr does not say the lock was lost:\n%s", p.stderr)
	}
}

// Acceptance 4: repolock killed with SIGKILL: the command and a grandchild
// are gone within 2 s; the lock is free again after the TTL.
func TestExecSIGKILLLeavesNoOrphans(t *testing.T) {
	srv := testcluster.StartServer(t)
	dir := t.TempDir()
	pidf, gpidf := filepath.Join(dir, "pid"), filepath.Join(dir, "gpid")
	script := fmt.Sprintf(`echo $$ > %q; sh -c 'sleep 1000 & echo $! > %q; wait' & wait`, pidf, gpidf)
	p := start(t, srv.Env(""), append(append([]string{"exec", "-key", "orphans"}, fastFlags...), "--", "sh", "-c", script)...)
	pid, gpid := readPid(t, pidf), readPid(t, gpidf)
	if !alive(pid) || !alive(gpid) {
		t.Fatal("command or grandchild not running before the kill")
	}
	killed := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 5*time.Second)
	for alive(pid) || alive(gpid) {
		if time.Since(killed) > 2*time.Second {
			t.Fatalf("after 2s: command alive=%v, grandchild alive=%v", alive(pid), alive(gpid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("command and grandchild gone %s after SIGKILL of repolock", time.Since(killed))
	// The session was not destroyed (repolock had no chance): the lock
	// comes free when the server expires it, at most 2×TTL later.
	next := start(t, srv.Env(""), append(append([]string{"exec", "-key", "orphans", "-wait", "20s"}, fastFlags...), "--", "true")...)
	if code := next.wait(t, 25*time.Second); code != 0 {
		t.Fatalf("next holder exited %d:\n%s", code, next.stderr)
	}
	t.Logf("lock free again %s after the SIGKILL", time.Since(killed))
}

// Acceptance 5: SIGTERM or SIGINT to repolock is forwarded to the whole
// group; the lock is released only after the group is reaped; repolock
// exits with the child's code.
func TestExecForwardsSignals(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			ready, child, grand := filepath.Join(dir, "ready"), filepath.Join(dir, "child"), filepath.Join(dir, "grand")
			key := "signals-" + strconv.Itoa(int(sig))
			// The grandchild takes 300ms to stop after the signal: the lock
			// must stay until it has.
			// The grandchild runs in the foreground: sh starts background
			// jobs with SIGINT ignored, which no trap can undo.
			script := fmt.Sprintf(`trap 'echo child > %q; exit 7' TERM INT
sh -c 'trap "sleep 0.3; date +%%s%%N > %s; exit 0" TERM INT; echo 1 > %s; while :; do sleep 0.01; done'`, child, grand, ready)
			p := start(t, srv.Env(""), "exec", "-key", key, "--", "sh", "-c", script)
			waitFile(t, ready, 10*time.Second)
			pair, _ := holderEntry(t, c, key)
			gone := watchGone(c, pair)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 10*time.Second); code != 7 {
				t.Fatalf("exit %d, want the child's 7:\n%s", code, p.stderr)
			}
			releasedAt := <-gone
			waitFile(t, child, time.Second)
			waitFile(t, grand, time.Second)
			grandEnd := heartbeats(t, grand)[0] // a time that does not parse fails, not 0
			if releasedAt.UnixNano() <= grandEnd {
				t.Fatalf("lock released at %d, before the grandchild ended at %d", releasedAt.UnixNano(), grandEnd)
			}
			t.Logf("released %s after the grandchild ended", time.Duration(releasedAt.UnixNano()-grandEnd))
		})
	}
}

// watchGone reports when the KV entry disappears, seen by a blocking query.
func watchGone(c *api.Client, pair *api.KVPair) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		index := pair.ModifyIndex
		for {
			p, meta, err := c.KV().Get(pair.Key, &api.QueryOptions{WaitIndex: index, WaitTime: 30 * time.Second})
			if err == nil && p == nil {
				ch <- time.Now()
				return
			}
			if err == nil {
				index = meta.LastIndex
			}
		}
	}()
	return ch
}

// Acceptance 7: the child's environment and the fencing token.
func TestExecChildEnvironmentAndToken(t *testing.T) {
	srv := testcluster.StartServer(t)
	dir := t.TempDir()
	var last uint64
	for i := 0; i < 10; i++ {
		out := filepath.Join(dir, fmt.Sprint(i))
		code, stderr := runRepolock(t, srv.Env(""), "exec", "-key", "envtoken", "--", "sh", "-c",
			fmt.Sprintf(`env | grep ^REPOLOCK_ | sort > %q`, out))
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
		env := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(waitFile(t, out, time.Second)), "\n") {
			k, v, _ := strings.Cut(line, "=")
			env[k] = v
		}
		if env["REPOLOCK_HELD"] != "1" || env["REPOLOCK_KEY"] != "envtoken" || env["REPOLOCK_MODE"] != "exclusive" ||
			len(env["REPOLOCK_SESSION"]) != 36 {
			t.Fatalf("child environment: %v", env)
		}
		tok, err := strconv.ParseUint(env["REPOLOCK_FENCING_TOKEN"], 10, 64)
		if err != nil || tok <= last {
			t.Fatalf("holder %d: token %q not greater than %d", i, env["REPOLOCK_FENCING_TOKEN"], last)
		}
		last = tok
	}
}

// Acceptance 8: the holder record is in KV while the command runs and
// holds no environment value.
func TestExecHolderRecord(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	const secret = "s3cr3t-value-in-env-9f2a"
	env := append(srv.Env(""), "MY_BACKUP_PASSWORD="+secret, "NOMAD_ALLOC_ID=alloc-e2e", "NOMAD_JOB_ID=backup/periodic-1", "NOMAD_TASK_NAME=restic")
	p := start(t, env, "exec", "-key", "record", "--", "sh", "-c", fmt.Sprintf(`echo 1 > %q; sleep 30`, ready))
	waitFile(t, ready, 10*time.Second)
	pair, rec := holderEntry(t, c, "record")
	if rec.Holder.PID != p.cmd.Process.Pid || rec.Holder.Host == "" || rec.Holder.User == "" ||
		rec.Holder.NomadAllocID != "alloc-e2e" || rec.Holder.NomadJobID != "backup/periodic-1" ||
		rec.Holder.NomadTaskName != "restic" || rec.Token == 0 || rec.Granted == nil {
		t.Errorf("holder record: %s", pair.Value)
	}
	for _, kv := range env {
		if _, v, _ := strings.Cut(kv, "="); len(v) > 8 && strings.Contains(string(pair.Value), v) &&
			!strings.HasPrefix(kv, "NOMAD_") && !strings.HasPrefix(kv, "CONSUL_HTTP_ADDR") {
			t.Errorf("holder record contains the value of %s", kv)
		}
	}
	if strings.Contains(string(pair.Value), secret) {
		t.Fatal("holder record contains a secret")
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 10*time.Second)
}

// Acceptance 6: exit codes, each with a one-line error naming the cause.
func TestExecExitCodes(t *testing.T) {
	srv := testcluster.StartServer(t)
	env := srv.Env("")
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unreachable := []string{"CONSUL_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(testcluster.FreePort(t, "127.0.0.1"))}
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		msg  string // in stderr
	}{
		{"exit 0", env, []string{"exec", "-key", "codes", "--", "sh", "-c", "exit 0"}, 0, ""},
		{"exit 3", env, []string{"exec", "-key", "codes", "--", "sh", "-c", "exit 3"}, 3, ""},
		{"exit 42", env, []string{"exec", "-key", "codes", "--", "sh", "-c", "exit 42"}, 42, ""},
		{"killed by SIGKILL", env, []string{"exec", "-key", "codes", "--", "sh", "-c", "kill -KILL $$"}, 137, ""},
		{"killed by SIGTERM", env, []string{"exec", "-key", "codes", "--", "sh", "-c", "kill -TERM $$"}, 143, ""},
		{"not found", env, []string{"exec", "-key", "codes", "--", "no-such-command-xyz"}, 127, "no-such-command-xyz"},
		{"not executable", env, []string{"exec", "-key", "codes", "--", notExec}, 126, "permission denied"},
		{"unreachable", unreachable, []string{"exec", "-key", "codes", "-wait", "1s", "--", "true"}, 69, "Consul unreachable"}, // retried while the wait lasts
		{"bad flag", env, []string{"exec", "-key", "codes", "-bogus", "--", "true"}, 64, "-bogus"},
		{"no key", env, []string{"exec", "--", "true"}, 64, "-key is required"},
		{"no command", env, []string{"exec", "-key", "codes"}, 64, "no command"},
		{"bad timing", env, []string{"exec", "-key", "codes", "-ttl", "3s", "-kill-timeout", "5s", "--", "true"}, 64, "must be less than ttl"},
		{"bad signal", env, []string{"exec", "-key", "codes", "-kill-signal", "SIGFOO", "--", "true"}, 64, "SIGFOO"},
		{"unknown command", env, []string{"lock"}, 64, "unknown command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := runRepolock(t, c.env, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; output:\n%s", code, c.code, stderr)
			}
			if c.msg != "" && !strings.Contains(stderr, c.msg) {
				t.Errorf("output does not name the cause %q:\n%s", c.msg, stderr)
			}
			if c.code >= 64 && c.code != 137 && c.code != 143 {
				if !strings.Contains(stderr, "repolock: ") {
					t.Errorf("no one-line 'repolock: …' error:\n%s", stderr)
				}
			}
		})
	}

	t.Run("wait runs out", func(t *testing.T) {
		d := t.TempDir()
		ready := filepath.Join(d, "ready")
		holder := start(t, env, "exec", "-key", "busy", "--", "sh", "-c", fmt.Sprintf(`echo 1 > %q; sleep 30`, ready))
		waitFile(t, ready, 10*time.Second)
		code, stderr := runRepolock(t, env, "exec", "-key", "busy", "-wait", "300ms", "--", "true")
		if code != 75 || !strings.Contains(stderr, "not acquired within") || !strings.Contains(stderr, "held by") {
			t.Fatalf("exit %d, want 75 naming the holder:\n%s", code, stderr)
		}
		_ = holder.cmd.Process.Signal(syscall.SIGTERM)
		holder.wait(t, 10*time.Second)
	})

	t.Run("ACL denied", func(t *testing.T) {
		acl := testcluster.StartServer(t, testcluster.WithACL())
		mgmt := acl.Client(t)
		pol, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: "read-only", Rules: `key_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }`}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		marker := filepath.Join(t.TempDir(), "ran")
		code, stderr := runRepolock(t, acl.Env(tok.SecretID), "exec", "-key", "acl", "--", "touch", marker)
		if code != 77 || !strings.Contains(stderr, "node:write") {
			t.Fatalf("exit %d, want 77 naming node:write (the session node):\n%s", code, stderr)
		}
		if strings.Contains(stderr, tok.SecretID) {
			t.Fatal("the token appears in the output")
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatal("the command ran without the lock")
		}
		// With session:write but without key:write it names key:write.
		pol2, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: "session-only", Rules: `key_prefix "" { policy = "read" }
node_prefix "" { policy = "write" }
session_prefix "" { policy = "write" }`}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok2, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol2.ID}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		code, stderr = runRepolock(t, acl.Env(tok2.SecretID), "exec", "-key", "acl", "--", "touch", marker)
		if code != 77 || !strings.Contains(stderr, "key:write") {
			t.Fatalf("exit %d, want 77 naming key:write:\n%s", code, stderr)
		}
	})
}

// repolock status shows holder and waiter by repository name; repolock
// break destroys both, says what it destroyed, and the holder exits 76.
func TestStatusAndBreak(t *testing.T) {
	srv := testcluster.StartServer(t)
	env := srv.Env("")
	cfg := writeConfig(t, `
repository "photos" {
  tool     = "exec"
  location = "photos"
  lock_key = "photos-key"
}`)
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	holder := start(t, env, "exec", "-config", cfg, "-repository", "photos", "-mode", "exclusive", "--",
		"sh", "-c", fmt.Sprintf("echo 1 > %q; sleep 30", ready))
	waitFile(t, ready, 10*time.Second)
	waiter := start(t, env, "exec", "-key", "photos-key", "-mode", "shared", "-wait", "30s", "--", "true")
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		p := start(t, env, "status", "-config", cfg, "photos")
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("status exit %d:\n%s", code, p.stderr)
		}
		if out = p.stderr.String(); strings.Contains(out, "waiting") {
			break
		}
	}
	if !strings.Contains(out, "photos-key") || !strings.Contains(out, "holding") || !strings.Contains(out, "waiting") ||
		!strings.Contains(out, fmt.Sprintf("pid %d", holder.cmd.Process.Pid)) {
		t.Fatalf("status does not show the holder and the waiter:\n%s", out)
	}
	code, out := runRepolock(t, env, "break", "-config", cfg, "photos")
	if code != 0 || strings.Count(out, "destroyed session") != 2 || !strings.Contains(out, "holding exclusive") {
		t.Fatalf("break exit %d, want both sessions named:\n%s", code, out)
	}
	if code := holder.wait(t, 10*time.Second); code != 76 {
		t.Fatalf("holder exit %d after break, want 76:\n%s", code, holder.stderr)
	}
	// Issue 23, behaviour 5: a waiter whose session was destroyed queues
	// again with a new one while its wait lasts, and runs.
	if code := waiter.wait(t, 10*time.Second); code != 0 || !strings.Contains(waiter.stderr.String(), "queues again with a new session") {
		t.Fatalf("waiter whose session was destroyed exited %d, want 0 after queueing again:\n%s", code, waiter.stderr)
	}
	code, out = runRepolock(t, env, "break", "photos-key")
	if code != 0 || !strings.Contains(out, "nothing destroyed") {
		t.Fatalf("second break: exit %d:\n%s", code, out)
	}
}

// on_busy = "skip" turns a busy repository into exit 0 without running the
// command; "fail" into 75.
func TestRunOnBusy(t *testing.T) {
	srv := testcluster.StartServer(t)
	env := srv.Env("")
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	cfg := writeConfig(t, fmt.Sprintf(`
repository "r" {
  tool     = "exec"
  location = "busy-repo"
}
job "skipper" {
  repository = "r"
  mode       = "exclusive"
  command    = ["touch", %q]
  lock {
    wait    = "200ms"
    on_busy = "skip"
  }
}
job "failer" {
  repository = "r"
  mode       = "exclusive"
  command    = ["touch", %q]
  lock {
    wait = "200ms"
  }
}`, marker, marker))
	ready := filepath.Join(dir, "ready")
	holder := start(t, env, "exec", "-config", cfg, "-repository", "r", "-mode", "exclusive", "--",
		"sh", "-c", fmt.Sprintf("echo 1 > %q; sleep 30", ready))
	waitFile(t, ready, 10*time.Second)
	if code, out := runRepolock(t, env, "run", "-config", cfg, "skipper"); code != 0 || !strings.Contains(out, "skipped") {
		t.Fatalf("on_busy=skip: exit %d, want 0 saying it skipped:\n%s", code, out)
	}
	if code, out := runRepolock(t, env, "run", "-config", cfg, "failer"); code != 75 {
		t.Fatalf("on_busy=fail: exit %d, want 75:\n%s", code, out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a command ran while the repository was busy")
	}
	_ = holder.cmd.Process.Signal(syscall.SIGTERM)
	holder.wait(t, 10*time.Second)
}

// A SIGKILL to repolock's whole process group (GNU timeout, a service
// manager) must not take the guard along: the command's descendants die
// too, instead of living on under init after the lock expires.
func TestExecGroupSIGKILL(t *testing.T) {
	srv := testcluster.StartServer(t)
	dir := t.TempDir()
	pidf, gpidf := filepath.Join(dir, "pid"), filepath.Join(dir, "gpid")
	script := fmt.Sprintf(`echo $$ > %q; sh -c 'sleep 1000 & echo $! > %q; wait' & wait`, pidf, gpidf)
	p := &proc{cmd: exec.Command(binary, append(append([]string{"exec", "-key", "group-kill"}, fastFlags...), "--", "sh", "-c", script)...),
		stderr: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(testcluster.CleanEnv(), srv.Env("")...)
	p.cmd.Stderr, p.cmd.Stdout = p.stderr, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // repolock leads its own group, as under timeout(1)
	must(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	pid, gpid := readPid(t, pidf), readPid(t, gpidf)
	killed := time.Now()
	must(t, syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL))
	// Not waiting on p.done: a surviving grandchild would hold the output
	// pipe open and Wait with it.
	for alive(pid) || alive(gpid) {
		if time.Since(killed) > 2*time.Second {
			_ = syscall.Kill(gpid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("2s after SIGKILL of repolock's group: command alive=%v, grandchild alive=%v", alive(pid), alive(gpid))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Never 0 after an interrupted run: a command that catches the forwarded
// SIGTERM and exits 0 still gives 128+15; a SIGINT while waiting for the
// lock gives 130, runs nothing and leaves no entry behind.
func TestExecInterruptedIsNotSuccess(t *testing.T) {
	srv := testcluster.StartServer(t)
	env := srv.Env("")
	dir := t.TempDir()
	ready, marker := filepath.Join(dir, "ready"), filepath.Join(dir, "ran")
	holder := start(t, env, "exec", "-key", "intr", "--", "sh", "-c",
		fmt.Sprintf(`trap 'exit 0' TERM; echo 1 > %q; while :; do sleep 0.01; done`, ready))
	waitFile(t, ready, 10*time.Second)

	waiter := start(t, env, "exec", "-key", "intr", "-wait", "1m", "--", "touch", marker)
	c := srv.Client(t)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pairs, _, err := c.KV().List(consullock.RepoPrefix("", "intr")+"lock/", nil)
		if err == nil && len(pairs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiter never queued")
		}
	}
	must(t, waiter.cmd.Process.Signal(syscall.SIGINT))
	if code := waiter.wait(t, 10*time.Second); code != 130 || !strings.Contains(waiter.stderr.String(), "while waiting for the lock") {
		t.Fatalf("SIGINT while waiting: exit %d, want 130:\n%s", code, waiter.stderr)
	}
	if pairs, _, _ := c.KV().List(consullock.RepoPrefix("", "intr")+"lock/", nil); len(pairs) != 1 {
		t.Errorf("%d lock entries after the interrupted waiter left, want only the holder's", len(pairs))
	}

	must(t, holder.cmd.Process.Signal(syscall.SIGTERM))
	if code := holder.wait(t, 10*time.Second); code != 128+15 {
		t.Fatalf("command exited 0 after a forwarded SIGTERM: repolock exit %d, want 143:\n%s", code, holder.stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the interrupted waiter ran its command")
	}
}
