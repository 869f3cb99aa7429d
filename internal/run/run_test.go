package run

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/exitcode"
	"github.com/repolock/repolock/internal/history"
	"github.com/repolock/repolock/internal/supervise"
	"github.com/repolock/repolock/internal/testcluster"
	"github.com/repolock/repolock/internal/timing"
)

func TestMain(m *testing.M) {
	supervise.MaybeRunGuard()
	os.Exit(m.Run())
}

// fast keeps fault tests at seconds (agents run with session_ttl_min = 1s).
var fast = timing.Model{Lease: timing.Lease{TTL: 2 * time.Second, RenewInterval: 500 * time.Millisecond, Margin: 300 * time.Millisecond},
	KillTimeout: 500 * time.Millisecond}

func spec(args []string, targets ...Target) Spec {
	return Spec{Targets: targets, Prefix: consullock.DefaultPrefix, Args: args, Env: []string{"PATH=" + os.Getenv("PATH")},
		Timing: fast, Wait: 10 * time.Second, KillSignal: syscall.SIGTERM, Holder: consullock.LocalHolder("test", "t")}
}

func runner(c *api.Client, started func(*supervise.Process)) *Runner {
	return &Runner{Client: c, Log: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: os.Stderr}),
		Signals: make(chan os.Signal), Started: started}
}

func last(t *testing.T, c *api.Client, key string) history.Run {
	t.Helper()
	p, _, err := c.KV().Get(consullock.RepoPrefix("", key)+"last", nil)
	if err != nil || p == nil {
		t.Fatalf("no last run of %s: %v", key, err)
	}
	var l history.Run
	if err := json.Unmarshal(p.Value, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// The start hook sees the running command; destroying the session from
// outside then stops it, and the outcome carries exit code 76, in the
// error and in the last record.
func TestRunLostLockThroughStartHook(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	var pid int
	r := runner(c, func(p *supervise.Process) {
		pid = p.Pid()
		entries, _, err := c.KV().List(consullock.RepoPrefix("", "lost")+"lock/", nil)
		if err != nil || len(entries) != 1 {
			t.Errorf("entries %v, %v", entries, err)
			return
		}
		if _, err := c.Session().Destroy(entries[0].Session, nil); err != nil {
			t.Error(err)
		}
	})
	err := r.Run(context.Background(), spec([]string{"sleep", "30"}, Target{Repository: "lost", Key: "lost", Mode: consullock.Exclusive, Primary: true}))
	var lost *LockLostError
	if !errors.As(err, &lost) || Of(err).Code != exitcode.LockLost {
		t.Fatalf("err = %v, want a LockLostError with exit %d", err, exitcode.LockLost)
	}
	if pid == 0 || syscall.Kill(pid, 0) == nil {
		t.Fatalf("command pid %d still alive after the loss", pid)
	}
	if l := last(t, c, "lost"); l.Exit != exitcode.LockLost || !l.LockLost {
		t.Fatalf("last run %+v", l)
	}
}

// Two targets are held as one: the command sees the primary's variables,
// both entries hold while it runs, and a clean end releases both.
func TestRunTwoTargets(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	holding := map[string]int{}
	r := runner(c, func(*supervise.Process) {
		for _, k := range []string{"a-key", "b-key"} {
			entries, _, _ := c.KV().List(consullock.RepoPrefix("", k)+"lock/", nil)
			holding[k] = len(entries)
		}
	})
	s := spec([]string{"sh", "-c", "env > " + out},
		Target{Repository: "a", Key: "a-key", Mode: consullock.Shared},
		Target{Repository: "b", Key: "b-key", Mode: consullock.Shared, Primary: true})
	if err := r.Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if holding["a-key"] != 1 || holding["b-key"] != 1 {
		t.Fatalf("entries while the command ran: %v, want one per key", holding)
	}
	env, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "REPOLOCK_KEY=b-key\n") || !strings.Contains(string(env), "REPOLOCK_REPOSITORY=b\n") {
		t.Fatalf("command environment names another target than the primary:\n%s", env)
	}
	for _, k := range []string{"a-key", "b-key"} {
		if entries, _, _ := c.KV().List(consullock.RepoPrefix("", k)+"lock/", nil); len(entries) != 0 {
			t.Errorf("%s still has entries after a clean end: %v", k, entries)
		}
	}
	if l := last(t, c, "b-key"); l.Exit != 0 || l.Class != "success" {
		t.Errorf("last run %+v", l)
	}
}

// A busy exit is healed once: the clear command runs under an exclusive
// grant, and the command runs a second time; a second busy exit is final.
func TestRunHealsOnce(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	clears := filepath.Join(dir, "clears")
	target := Target{Repository: "h", Key: "heal", Mode: consullock.Shared, Primary: true, Native: &Native{
		Tool: "fake", Policy: "all", Env: []string{"PATH=" + os.Getenv("PATH")},
		Clear: []string{"sh", "-c", "echo $REPOLOCK_HELD >> " + clears},
		Fix:   "set unlock_native",
	}}
	s := spec([]string{"sh", "-c", "echo x >> " + runs + "; exit 11"}, target)
	s.Busy = func(code int) bool { return code == 11 }
	err := runner(c, nil).Run(context.Background(), s)
	var child *ChildExitError
	if !errors.As(err, &child) || Of(err).Code != 11 || !strings.Contains(err.Error(), "set unlock_native") {
		t.Fatalf("err = %v, want the second busy exit 11 with the fix", err)
	}
	if b, _ := os.ReadFile(runs); strings.Count(string(b), "x") != 2 {
		t.Fatalf("the command ran %d times, want 2", strings.Count(string(b), "x"))
	}
	if b, _ := os.ReadFile(clears); strings.Count(string(b), "\n") != 1 {
		t.Fatalf("the clear command ran %q, want once", b)
	}
	if l := last(t, c, "heal"); l.Attempts != 2 || l.Exit != 11 {
		t.Fatalf("last run %+v, want attempt 2 with exit 11", l)
	}
}
