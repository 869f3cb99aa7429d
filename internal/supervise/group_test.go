//go:build linux

package supervise

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A signal goes to the whole group: both shells' traps run and the sleeps die.
func TestSignalReachesGrandchild(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, `
trap 'echo term > "$D/c.term"; exit 0' TERM
sh -c 'trap "echo term > \"\$D/g.term\"; exit 0" TERM
       sleep 100 & echo $! > "$D/gsleep"
       echo $$ > "$D/g.ready"; wait' &
echo $! > "$D/gpid"
wait`, nil)
	gpid := waitPidFile(t, filepath.Join(dir, "g.ready"))
	gsleep := waitPidFile(t, filepath.Join(dir, "gsleep"))
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	for _, f := range []string{"c.term", "g.term"} {
		if !exists(filepath.Join(dir, f)) {
			t.Errorf("trap did not record %s", f)
		}
	}
	assertResult(t, p, Result{ExitCode: 0})
	for _, pid := range []int{p.Pid(), gpid, gsleep} {
		if !gone(pid) {
			t.Errorf("pid %d still exists after Done", pid)
		}
	}
}

// A command that traps TERM and carries on is SIGKILLed after the kill timeout.
func TestStopEscalatesToSIGKILL(t *testing.T) {
	t.Parallel()
	const killTimeout = 300 * time.Millisecond
	p, dir := shell(t, `
trap 'echo term >> "$D/term"' TERM
echo ready > "$D/ready"
while :; do sleep 1 & wait; done`, func(s *Spec) { s.KillTimeout = killTimeout })
	waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
	start := Now()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	elapsed := Now().Sub(start)
	if !exists(filepath.Join(dir, "term")) {
		t.Error("the command never saw the kill signal before SIGKILL")
	}
	if elapsed < killTimeout || elapsed > killTimeout+2*time.Second {
		t.Errorf("stopped after %v, want just over the kill timeout %v", elapsed, killTimeout)
	}
	assertResult(t, p, Result{ExitCode: 128 + 9, Signal: syscall.SIGKILL})
	if err := p.Stop(); !errors.Is(err, ErrDone) {
		t.Errorf("Stop after Done = %v, want ErrDone", err)
	}
}

// Done waits for a grandchild that outlives the command; one that dies of
// the kill signal goes at once.
func TestDoneWaitsForBackgroundGrandchild(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, `sleep 1 & echo $! > "$D/gpid"`, nil)
	waitClosed(t, p.Exited(), 5*time.Second, "Exited")
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	gpid := waitPidFile(t, filepath.Join(dir, "gpid"))
	if !gone(gpid) {
		t.Errorf("grandchild %d still exists after Done", gpid)
	}
	assertResult(t, p, Result{ExitCode: 0})
}

// A grandchild that ignores the kill signal is SIGKILLed after the kill
// timeout, and only then is Done closed.
func TestDoneWaitsForStubbornGrandchild(t *testing.T) {
	t.Parallel()
	const killTimeout = 400 * time.Millisecond
	p, dir := shell(t, `
(trap "" TERM; echo > "$D/ready"; exec sleep 100) &
while [ ! -e "$D/ready" ]; do sleep 0.01; done
echo $! > "$D/gpid"
exit 5`, func(s *Spec) { s.KillTimeout = killTimeout })
	waitClosed(t, p.Exited(), 5*time.Second, "Exited")
	exitedAt := Now()
	gpid := waitPidFile(t, filepath.Join(dir, "gpid"))
	if notRunning(gpid) {
		t.Fatalf("grandchild %d died before the kill timeout", gpid)
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed while the grandchild was alive")
	default:
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if d := Now().Sub(exitedAt); d < killTimeout-100*time.Millisecond {
		t.Errorf("Done %v after Exited, want about the kill timeout %v", d, killTimeout)
	}
	if !gone(gpid) {
		t.Errorf("grandchild %d still exists after Done", gpid)
	}
	assertResult(t, p, Result{ExitCode: 5})
}
