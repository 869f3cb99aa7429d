package main_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/repolock/repolock/internal/testcluster"
)

// Issue 10 acceptance 4: a local HTTP server receives start, success,
// failure, lost and busy pings from curl hooks with the outcome variables;
// a hook that hangs is killed at its timeout and the exit code stays the
// run's; hooks see no secret of repolock's environment.
func TestHooks(t *testing.T) {
	var mu sync.Mutex
	var pings []string
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srvHTTP := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		pings = append(pings, strings.TrimPrefix(r.URL.Path, "/")+": "+string(b))
		mu.Unlock()
	})}
	go srvHTTP.Serve(l)
	t.Cleanup(func() { srvHTTP.Close() })
	url := "http://" + l.Addr().String()
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := append([]string(nil), pings...)
		pings = nil
		return out
	}

	srv := testcluster.StartServer(t)
	const token = "consul-token-5ecret"
	env := append(srv.Env(""), "CONSUL_HTTP_TOKEN_IGNORED="+token)
	cfg := writeConfig(t, fmt.Sprintf(`
lock {
  ttl            = "2s"
  renew_interval = "500ms"
  kill_timeout   = "500ms"
  margin         = "300ms"
  wait           = "0s"
}
hook "ping" {
  on      = ["start", "success", "failure", "lost", "busy"]
  command = ["sh", "-c", "curl -fsS --data-binary \"$REPOLOCK_OUTCOME $REPOLOCK_EXIT_CODE $REPOLOCK_KEY [$REPOLOCK_ERROR] [$CONSUL_HTTP_TOKEN_IGNORED]\" $URL/$REPOLOCK_EVENT"]
  env     = { URL = %q }
}
repository "h" {
  tool     = "exec"
  location = "hooks-repo"
  lock_key = "hooks-repo"
}
job "flaky" {
  repository = "h"
  mode       = "exclusive"
  command    = ["sh", "-c", "exit $FLAKY"]
  hook "hang" {
    on      = ["success"]
    command = ["sleep", "30"]
    timeout = "500ms"
  }
}
job "hold" {
  repository = "h"
  mode       = "exclusive"
  command    = ["sh", "-c", "echo 1 > $READY; sleep 30"]
}
`, url))

	began := time.Now()
	code, out := runRepolock(t, append(env, "FLAKY=0"), "run", "-config", cfg, "flaky")
	if code != 0 || time.Since(began) > 10*time.Second {
		t.Fatalf("success with a hanging hook: exit %d after %s, want 0 at once:\n%s", code, time.Since(began), out)
	}
	if !strings.Contains(out, "killed at its timeout of 500ms") {
		t.Errorf("the hanging hook was not killed at its timeout:\n%s", out)
	}
	want := []string{"start:   hooks-repo [] []", "success: success 0 hooks-repo [] []"}
	if p := got(); strings.Join(p, "|") != strings.Join(want, "|") {
		t.Errorf("pings %q, want %q", p, want)
	}

	if code, _ := runRepolock(t, append(env, "FLAKY=3"), "run", "-config", cfg, "flaky"); code != 3 {
		t.Fatalf("failure: exit %d, want 3", code)
	}
	p := got()
	if len(p) != 2 || !strings.HasPrefix(p[1], "failure: failure 3 hooks-repo [repolock: command exited with code 3") && !strings.HasPrefix(p[1], "failure: failure 3 hooks-repo [command exited with code 3") {
		t.Errorf("failure pings %q", p)
	}

	ready := filepath.Join(t.TempDir(), "ready")
	holder := start(t, append(env, "READY="+ready), "run", "-config", cfg, "hold")
	waitFile(t, ready, 10*time.Second)
	got() // the holder's start
	if code, _ := runRepolock(t, append(env, "FLAKY=0"), "run", "-config", cfg, "flaky"); code != 75 {
		t.Fatalf("busy: exit %d, want 75", code)
	}
	if p := got(); len(p) != 1 || !strings.HasPrefix(p[0], "busy: busy 75 hooks-repo [") {
		t.Errorf("busy pings %q", p)
	}
	if code, out := runRepolock(t, env, "break", "-config", cfg, "h"); code != 0 {
		t.Fatalf("break: %d\n%s", code, out)
	}
	if code := holder.wait(t, 20*time.Second); code != 76 {
		t.Fatalf("hold after a break: exit %d, want 76", code)
	}
	if p := got(); len(p) != 1 || !strings.HasPrefix(p[0], "lost: lost 76 hooks-repo [") {
		t.Errorf("lost pings %q", p)
	}
}

// Issue 10 acceptance 5: status flags a job whose last success is older
// than its expect_every, or missing, and exits 1; with every job fresh it
// exits 0.
func TestStatusFlagsStale(t *testing.T) {
	srv := testcluster.StartServer(t)
	env := srv.Env("")
	cfg := writeConfig(t, `
repository "s" {
  tool     = "exec"
  location = "stale-repo"
  lock_key = "stale-repo"
}
job "often" {
  repository   = "s"
  mode         = "exclusive"
  command      = ["sh", "-c", "exit $FAIL"]
  expect_every = "2s"
}
`)
	if code, out := runRepolock(t, env, "status", "-config", cfg); code != 1 || !strings.Contains(out, "STALE: job often") || !strings.Contains(out, "no recorded success") {
		t.Fatalf("status before any run: exit %d, want 1 flagging the job:\n%s", code, out)
	}
	if code, _ := runRepolock(t, append(env, "FAIL=0"), "run", "-config", cfg, "often"); code != 0 {
		t.Fatal("run failed")
	}
	if code, out := runRepolock(t, env, "status", "-config", cfg); code != 0 || strings.Contains(out, "STALE") {
		t.Fatalf("status right after a success: exit %d, want 0:\n%s", code, out)
	}
	// A failure does not refresh the last success; time passes.
	if code, _ := runRepolock(t, append(env, "FAIL=4"), "run", "-config", cfg, "often"); code != 4 {
		t.Fatal("the failing run did not exit 4")
	}
	time.Sleep(2100 * time.Millisecond)
	if code, out := runRepolock(t, env, "status", "-config", cfg, "s"); code != 1 || !strings.Contains(out, "last success") {
		t.Fatalf("status after expect_every: exit %d, want 1 with the age of the last success:\n%s", code, out)
	}
}
