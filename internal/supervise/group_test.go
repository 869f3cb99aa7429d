//go:build linux

package supervise

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// The command gets the kill signal once, whether a stop comes alone or
// after the guard's own deadline fired (a lost lock is usually noticed by
// both): a second SIGTERM runs a shell trap twice, and cuts short the
// cleanup of tools that take a second signal as "exit now".
func TestKillSignalOnce(t *testing.T) {
	t.Parallel()
	for name, stop := range map[string]func(*testing.T, *Process){
		"stop": func(t *testing.T, p *Process) {
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
			_ = p.Stop()
		},
		"stop after the deadline fired": func(t *testing.T, p *Process) {
			if err := p.SetDeadline(Now().Add(50*time.Millisecond), 0); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "deadline fired", p.DeadlineFired)
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p, err := Start(Spec{
				Path:        os.Args[0],
				Env:         []string{helperEnv + "=count-term", "SUPERVISE_TEST_DIR=" + dir, "GORACE=" + os.Getenv("GORACE")},
				KillTimeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			cleanupProcess(t, p, 5*time.Second)
			waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
			stop(t, p)
			waitClosed(t, p.Done(), 5*time.Second, "Done")
			if got := strings.TrimSpace(waitFile(t, filepath.Join(dir, "terms"), time.Second)); got != "1" {
				t.Errorf("the command received SIGTERM %s times, want once", got)
			}
			assertResult(t, p, Result{ExitCode: 0})
		})
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

// escapee starts a process that leaves the command's group with setsid and
// writes its pid to $D/spid; trap is run first. It is a shell fragment.
func escapee(trap string) string {
	return `setsid sh -c '` + trap + `echo $$ > "$D/spid"; exec sleep 100'`
}

// waitEscaped waits for the escapee's pid and checks that it runs outside
// the command's process group.
func waitEscaped(t *testing.T, p *Process, dir string) int {
	t.Helper()
	spid := waitPidFile(t, filepath.Join(dir, "spid"))
	state, pgid, ok := procStat(strconv.Itoa(spid))
	if !ok || state == 'Z' || pgid == p.Pid() {
		t.Fatalf("escapee %d: state %q, pgid %d (command %d); want running outside the group",
			spid, state, pgid, p.Pid())
	}
	return spid
}

// Processes that left the group (setsid), whether still the command's
// children or already orphaned to the guard, are stopped after the command
// exits, and Done waits until they are gone.
func TestDoneWaitsForEscapedDescendants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, start string
	}{
		{"setsid child", escapee("") + " &"},
		{"orphaned", "(" + escapee("") + " &)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, dir := shell(t, tc.start+`
while [ ! -e "$D/go" ]; do sleep 0.01; done
exit 0`, nil)
			spid := waitEscaped(t, p, dir)
			if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, p.Done(), 5*time.Second, "Done")
			if !gone(spid) {
				t.Errorf("escapee %d still exists after Done", spid)
			}
			assertResult(t, p, Result{ExitCode: 0})
		})
	}
}

// An escapee that ignores the kill signal is SIGKILLed after the kill
// timeout, and only then is Done closed.
func TestDoneWaitsForStubbornEscapee(t *testing.T) {
	t.Parallel()
	const killTimeout = 400 * time.Millisecond
	p, dir := shell(t, escapee(`trap "" TERM; `)+` &
while [ ! -e "$D/go" ]; do sleep 0.01; done
exit 0`, func(s *Spec) { s.KillTimeout = killTimeout })
	spid := waitEscaped(t, p, dir)
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Exited(), 5*time.Second, "Exited")
	exitedAt := Now()
	select {
	case <-p.Done():
		t.Fatal("Done closed while the escapee was alive")
	default:
	}
	if notRunning(spid) {
		t.Fatalf("escapee %d died before the kill timeout", spid)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if d := Now().Sub(exitedAt); d < killTimeout-100*time.Millisecond {
		t.Errorf("Done %v after Exited, want about the kill timeout %v", d, killTimeout)
	}
	if !gone(spid) {
		t.Errorf("escapee %d still exists after Done", spid)
	}
	assertResult(t, p, Result{ExitCode: 0})
}

// Stop reaches processes that left the group while the command runs.
func TestStopReachesEscapee(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, escapee("")+` &
while :; do sleep 1 & wait; done`, nil)
	spid := waitEscaped(t, p, dir)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if !gone(spid) {
		t.Errorf("escapee %d still exists after Done", spid)
	}
	assertResult(t, p, Result{ExitCode: 128 + 15, Signal: syscall.SIGTERM})
}

// Both ways of listing descendants agree on a small tree.
func TestDescendants(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, `sh -c 'sleep 100 & echo $! > "$D/inner"; wait' &
echo ready > "$D/ready"; wait`, nil)
	inner := waitPidFile(t, filepath.Join(dir, "inner"))
	waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
	// The middle shell and, below it, the sleep.
	byParent := parentMap()
	viaChildren, viaScan := descendants(p.Pid()), walk(p.Pid(), func(pid int) []int { return byParent[pid] })
	slices.Sort(viaChildren)
	slices.Sort(viaScan)
	if len(viaChildren) != 2 || !slices.Contains(viaChildren, inner) || !slices.Equal(viaChildren, viaScan) {
		t.Fatalf("descendants of %d: children files %v, /proc scan %v; want the middle shell and %d",
			p.Pid(), viaChildren, viaScan, inner)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if !gone(inner) {
		t.Errorf("pid %d still exists after Done", inner)
	}
}

// A guard killed while an escapee it was stopping still lives leaves the
// end unknown, even though the command's own code is known: the caller
// must not take it for a clean end.
func TestGuardKilledWithEscapeeIsUnknown(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, escapee(`trap "" TERM; `)+` &
while [ ! -s "$D/spid" ]; do sleep 0.01; done; exit 0`, func(s *Spec) { s.KillTimeout = 30 * time.Second })
	spid := waitEscaped(t, p, dir)
	defer syscall.Kill(spid, syscall.SIGKILL)
	waitClosed(t, p.Exited(), 5*time.Second, "Exited")
	if err := syscall.Kill(p.guard.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if r := p.Result(); !r.Unknown || r.ExitCode != 0 {
		t.Fatalf("Result = %+v, want the command's code 0 with Unknown set", r)
	}
}

// A stop does not signal the command's own helpers outside its group while
// the command still runs (restic keeps its ssh in a group of its own and
// needs it to remove its lock on the way out); they go once it is gone.
func TestStopSparesEscapeeWhileCommandRuns(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, escapee("")+` &
trap 'sleep 0.2; if kill -0 "$(cat "$D/spid")" 2>/dev/null; then echo alive; else echo dead; fi > "$D/seen"; exit 0' TERM
while :; do sleep 1 & wait; done`, nil)
	spid := waitEscaped(t, p, dir)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if seen := waitFile(t, filepath.Join(dir, "seen"), time.Second); strings.TrimSpace(seen) != "alive" {
		t.Fatalf("the command's helper outside its group was %q while the command shut down; want alive", seen)
	}
	if !gone(spid) {
		t.Errorf("escapee %d still exists after Done", spid)
	}
}

// Interrupt forwards the signal and, when the command ignores it, SIGKILLs
// the group after the kill timeout (not twice the timeout, and not never).
func TestInterruptEscalates(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, `trap 'echo got >> "$D/int"' INT; echo ready > "$D/ready"; while :; do sleep 0.05; done`,
		func(s *Spec) { s.KillTimeout = 300 * time.Millisecond })
	waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
	start := time.Now()
	if err := p.Interrupt(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done after Interrupt of a command that ignores SIGINT")
	took := time.Since(start)
	if took < 250*time.Millisecond || took > 2*time.Second {
		t.Errorf("the group ended %s after Interrupt; want about the kill timeout (300ms)", took)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "int")); string(b) != "got\n" {
		t.Errorf("the trap saw %q, want the forwarded SIGINT once", b)
	}
	assertResult(t, p, Result{ExitCode: 128 + 9, Signal: syscall.SIGKILL})
}
