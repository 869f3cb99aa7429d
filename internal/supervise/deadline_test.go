//go:build linux

package supervise

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// stubborn records every TERM and keeps running.
const stubborn = `
trap 'echo term >> "$D/term"' TERM
echo ready > "$D/ready"
while :; do sleep 1 & wait; done`

// Without renewal the guard sends the kill signal at soft and SIGKILL at
// hard, even though nobody sends it anything after SetDeadline.
func TestDeadManSwitchKillsGroup(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, stubborn, nil)
	waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
	start := Now()
	soft, hard := start.Add(300*time.Millisecond), start.Add(600*time.Millisecond)
	if err := p.SetDeadline(soft, hard); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dir, "term"), 5*time.Second)
	termSeen := Now()
	if termSeen < soft {
		t.Errorf("kill signal %v after start, before the soft deadline", termSeen.Sub(start))
	}
	if termSeen >= hard {
		t.Errorf("kill signal seen only %v after start, not before the hard deadline", termSeen.Sub(start))
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if dead := Now(); dead < hard || dead.Sub(hard) > 500*time.Millisecond {
		t.Errorf("group dead %v after start, want just after %v", dead.Sub(start), hard.Sub(start))
	}
	assertResult(t, p, Result{ExitCode: 128 + 9, Signal: syscall.SIGKILL})
}

// Extending the deadline before it passes keeps the command running.
func TestDeadManSwitchExtended(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, stubborn, nil)
	waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
	end := Now().Add(time.Second)
	for Now() < end {
		now := Now()
		if err := p.SetDeadline(now.Add(300*time.Millisecond), now.Add(600*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the renew interval being tested
	}
	if exists(filepath.Join(dir, "term")) {
		t.Fatal("kill signal sent although the deadline was extended")
	}
	select {
	case <-p.Exited():
		t.Fatalf("command ended although the deadline was extended: %+v", p.Result())
	default:
	}
	if err := p.SetDeadline(0, 0); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
}

func TestSetDeadlineRejectsSoftAfterHard(t *testing.T) {
	t.Parallel()
	p, _ := shell(t, "exit 0", nil)
	now := Now()
	if err := p.SetDeadline(now.Add(time.Second), now); err == nil {
		t.Error("SetDeadline(soft > hard) succeeded")
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
}
