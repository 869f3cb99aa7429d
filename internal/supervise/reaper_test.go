//go:build linux

package supervise

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPID1Reaper runs the PID-1 code path: the test process pretends to be
// PID 1 and, as a child subreaper, adopts orphans the way PID 1 does. Not
// parallel: while the reaper runs it reaps every child of the process.
func TestPID1Reaper(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	isPID1 = func() bool { return true }
	t.Cleanup(func() {
		isPID1 = func() bool { return os.Getpid() == 1 }
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	})

	t.Run("exit code", func(t *testing.T) {
		p, _ := shell(t, "exit 7", nil)
		waitClosed(t, p.Done(), 5*time.Second, "Done")
		assertResult(t, p, Result{ExitCode: 7})
	})

	t.Run("unrelated child is reaped", func(t *testing.T) {
		p, dir := shell(t, `echo > "$D/ready"; while :; do sleep 1 & wait; done`, nil)
		waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
		other, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
		if err != nil {
			t.Fatal(err)
		}
		pid := other.Pid
		_ = other.Release()
		eventually(t, 2*time.Second, "unrelated zombie reaped", func() bool { return gone(pid) })
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, p.Done(), 5*time.Second, "Done")
	})

	t.Run("guard dies", func(t *testing.T) {
		p, dir := shell(t, `sleep 100 & echo $! > "$D/gpid"; wait`, nil)
		gpid := waitPidFile(t, filepath.Join(dir, "gpid"))
		if err := syscall.Kill(p.guard.pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, p.Done(), 5*time.Second, "Done")
		assertResult(t, p, Result{ExitCode: -1, Unknown: true})
		// Orphans came to us, so they are reaped, not just dead.
		eventually(t, 2*time.Second, "orphans reaped", func() bool {
			return gone(p.Pid()) && gone(gpid) && gone(p.guard.pid)
		})
	})

	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	if reaper.users != 0 || len(reaper.waiters) != 0 {
		t.Errorf("reaper still has %d users and %d waiters", reaper.users, len(reaper.waiters))
	}
}
