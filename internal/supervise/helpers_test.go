//go:build linux

package supervise

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/repolock/repolock/internal/timing"
)

// testKillTimeout is repolock's default kill_timeout, so that the tests
// stop commands the way a default run does.
const testKillTimeout = timing.DefaultKillTimeout

// shellSpec is sh -c script with $D set to dir and testKillTimeout; mod
// may change it.
func shellSpec(script, dir string, mod func(*Spec)) Spec {
	spec := Spec{
		Path:        "/bin/sh",
		Args:        []string{"sh", "-c", script},
		Env:         []string{"D=" + dir, "PATH=" + os.Getenv("PATH")},
		KillTimeout: testKillTimeout,
	}
	if mod != nil {
		mod(&spec)
	}
	return spec
}

// shell starts shellSpec with a fresh directory, returning both.
func shell(t *testing.T, script string, mod func(*Spec)) (*Process, string) {
	t.Helper()
	dir := t.TempDir()
	spec := shellSpec(script, dir, mod)
	p, err := Start(spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	cleanupProcess(t, p, spec.KillTimeout)
	return p, dir
}

// cleanupProcess makes sure that a failed test does not leave p's group or
// the guard's other descendants running.
func cleanupProcess(t *testing.T, p *Process, killTimeout time.Duration) {
	t.Cleanup(func() {
		select {
		case <-p.Done():
			return
		default:
		}
		_ = p.Signal(syscall.SIGKILL)
		_ = p.Stop() // reaches processes that left the group, too
		select {
		case <-p.Done():
		case <-time.After(killTimeout + 5*time.Second):
			t.Errorf("cleanup: pid %d or its descendants still running", p.Pid())
		}
	})
}

// waitClosed fails the test unless ch closes within d.
func waitClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: not within %v", what, d)
	}
}

// eventually polls cond every 5 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitFile waits for a file that scripts create atomically (write, then mv)
// or by a single short echo, and returns its trimmed content.
func waitFile(t *testing.T, path string, d time.Duration) string {
	t.Helper()
	var s string
	eventually(t, d, "file "+filepath.Base(path), func() bool {
		b, err := os.ReadFile(path)
		s = strings.TrimSpace(string(b))
		return err == nil && strings.HasSuffix(string(b), "\n")
	})
	return s
}

// waitPidFile waits for a file holding a pid.
func waitPidFile(t *testing.T, path string) int {
	t.Helper()
	s := waitFile(t, path, 5*time.Second)
	pid, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s: %q is not a pid", path, s)
	}
	return pid
}

// gone reports that pid no longer exists at all: dead and reaped.
func gone(pid int) bool { return unix.Kill(pid, 0) == syscall.ESRCH }

// notRunning reports that pid is gone or a zombie nobody reaps (an init
// that does not reap, outside the test's control).
func notRunning(pid int) bool {
	if gone(pid) {
		return true
	}
	state, _, ok := procStat(strconv.Itoa(pid))
	return !ok || state == 'Z' || state == 'X'
}

func assertResult(t *testing.T, p *Process, want Result) {
	t.Helper()
	if got := p.Result(); got != want {
		t.Fatalf("Result = %+v, want %+v", got, want)
	}
}
