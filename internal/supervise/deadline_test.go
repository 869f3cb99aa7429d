//go:build linux

package supervise

import (
	"bufio"
	"errors"
	"path/filepath"
	"strings"
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
	assertKilledAtHard(t, p, start, hard)
}

// The deadline in the Spec is armed by the guard before the fork: the
// switch works without any SetDeadline.
func TestInitialDeadlineWithoutSetDeadline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := Now()
	soft, hard := start.Add(300*time.Millisecond), start.Add(600*time.Millisecond)
	p, err := Start(shellSpec(stubborn, dir, func(s *Spec) { s.Soft, s.Hard = soft, hard }))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	cleanupProcess(t, p, testKillTimeout)
	waitFile(t, filepath.Join(dir, "term"), 5*time.Second)
	if termSeen := Now(); termSeen < soft || termSeen >= hard {
		t.Errorf("kill signal seen %v after start, want between %v and %v",
			termSeen.Sub(start), soft.Sub(start), hard.Sub(start))
	}
	assertKilledAtHard(t, p, start, hard)
}

// A deadline that has passed when the guard is about to fork stops the
// start: the command never runs, with Start as with a spawned Guard.
func TestStartRefusesPassedDeadline(t *testing.T) {
	t.Parallel()
	starters := map[string]func(Spec) (*Process, error){
		"Start": Start,
		"Guard.Start": func(s Spec) (*Process, error) {
			g, err := Spawn("sh")
			if err != nil {
				return nil, err
			}
			return g.Start(s)
		},
	}
	for name, start := range starters {
		for _, tc := range []struct {
			name       string
			soft, hard time.Duration // from now; 0 = none
		}{
			{"soft passed", -time.Millisecond, time.Hour},
			{"hard only, passed", 0, -time.Millisecond},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				now := Now()
				var soft, hard Boottime
				if tc.soft != 0 {
					soft = now.Add(tc.soft)
				}
				if tc.hard != 0 {
					hard = now.Add(tc.hard)
				}
				p, err := start(shellSpec(`echo ran > "$D/ran"`, dir, func(s *Spec) { s.Soft, s.Hard = soft, hard }))
				if err == nil {
					<-p.Done()
					t.Fatalf("Start succeeded with a passed deadline; result %+v", p.Result())
				}
				if !errors.Is(err, ErrDeadlinePassed) {
					t.Fatalf("Start = %v, want ErrDeadlinePassed", err)
				}
				var ee *ExecError
				if errors.As(err, &ee) {
					t.Errorf("Start = %v, an ExecError", err)
				}
				if exists(filepath.Join(dir, "ran")) {
					t.Error("the command ran")
				}
			})
		}
	}
}

// Once the soft deadline fired, a later deadline (a renewal confirmed too
// late) does not re-arm the guard: SIGKILL still comes at the old hard one.
func TestFiredDeadlineIsFinal(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, stubborn, nil) // kill timeout 10s: hard comes first
	waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
	start := Now()
	soft, hard := start.Add(300*time.Millisecond), start.Add(600*time.Millisecond)
	if err := p.SetDeadline(soft, hard); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dir, "term"), 5*time.Second)
	eventually(t, 2*time.Second, "DeadlineFired", p.DeadlineFired)
	late := Now()
	if late >= hard {
		t.Fatalf("test too slow: %v past the hard deadline before the late renewal", late.Sub(hard))
	}
	if err := p.SetDeadline(late.Add(10*time.Second), late.Add(20*time.Second)); err != nil {
		t.Fatalf("SetDeadline after firing: %v", err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if dead := Now(); dead < hard || dead.Sub(hard) > 500*time.Millisecond {
		t.Errorf("group dead %v after start, want just after the old hard deadline %v",
			dead.Sub(start), hard.Sub(start))
	}
	assertResult(t, p, Result{ExitCode: 128 + 9, Signal: syscall.SIGKILL})
	if !p.DeadlineFired() {
		t.Error("DeadlineFired false after Done")
	}
}

// After the soft deadline fired, SIGKILL follows after the kill timeout
// when that comes before the hard deadline, again whatever R sends later.
func TestFiredDeadlineEscalatesAfterKillTimeout(t *testing.T) {
	t.Parallel()
	const killTimeout = 200 * time.Millisecond
	p, dir := shell(t, stubborn, func(s *Spec) { s.KillTimeout = killTimeout })
	waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
	start := Now()
	soft, hard := start.Add(300*time.Millisecond), start.Add(time.Minute)
	if err := p.SetDeadline(soft, hard); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dir, "term"), 5*time.Second)
	late := Now()
	if err := p.SetDeadline(late.Add(time.Minute), late.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if dead := Now(); dead < soft.Add(killTimeout) || dead.Sub(soft.Add(killTimeout)) > time.Second {
		t.Errorf("group dead %v after start, want just after soft + kill timeout = %v",
			dead.Sub(start), soft.Add(killTimeout).Sub(start))
	}
	assertResult(t, p, Result{ExitCode: 128 + 9, Signal: syscall.SIGKILL})
	if !p.DeadlineFired() {
		t.Error("DeadlineFired false after Done")
	}
}

// A zero kill timeout means SIGKILL right after the kill signal.
func TestZeroKillTimeout(t *testing.T) {
	t.Parallel()
	if s, err := (Spec{Path: "/bin/true"}).normalize(); err != nil || s.KillTimeout != 0 {
		t.Fatalf("normalize: KillTimeout %v, %v; want 0 kept", s.KillTimeout, err)
	}
	p, dir := shell(t, stubborn, func(s *Spec) { s.KillTimeout = 0 })
	waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
	start := Now()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if d := Now().Sub(start); d > time.Second {
		t.Errorf("stopped after %v despite a zero kill timeout", d)
	}
	assertResult(t, p, Result{ExitCode: 128 + 9, Signal: syscall.SIGKILL})
	if p.DeadlineFired() {
		t.Error("DeadlineFired after a plain Stop")
	}
}

// Every control call returns ErrDone once Done is closed.
func TestControlAfterDone(t *testing.T) {
	t.Parallel()
	p, _ := shell(t, "exit 0", nil)
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	now := Now()
	for name, err := range map[string]error{
		"Stop":        p.Stop(),
		"Signal":      p.Signal(syscall.SIGTERM),
		"SetDeadline": p.SetDeadline(now.Add(time.Second), now.Add(2*time.Second)),
	} {
		if !errors.Is(err, ErrDone) {
			t.Errorf("%s after Done = %v, want ErrDone", name, err)
		}
	}
}

func TestSpecDeadlineRoundTrip(t *testing.T) {
	t.Parallel()
	in := Spec{Path: "/bin/sh", Args: []string{"sh"}, KillSignal: syscall.SIGINT, Soft: 5, Hard: 7}
	out, err := decodeSpec(bufio.NewReader(strings.NewReader(encodeSpec(in))))
	if err != nil || out.Soft != 5 || out.Hard != 7 {
		t.Fatalf("decode(encode) = %+v, %v; want Soft 5, Hard 7", out, err)
	}
	if _, err := (Spec{Path: "/bin/true", Soft: 7, Hard: 5}).normalize(); err == nil {
		t.Error("normalize accepted Soft after Hard")
	}
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
	if p.DeadlineFired() {
		t.Error("DeadlineFired although the deadline was always extended in time")
	}
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

// assertKilledAtHard waits for Done and checks that the guard's own hard
// deadline, not anything earlier or later, SIGKILLed the group.
func assertKilledAtHard(t *testing.T, p *Process, start, hard Boottime) {
	t.Helper()
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if dead := Now(); dead < hard || dead.Sub(hard) > 500*time.Millisecond {
		t.Errorf("group dead %v after start, want just after %v", dead.Sub(start), hard.Sub(start))
	}
	assertResult(t, p, Result{ExitCode: 128 + 9, Signal: syscall.SIGKILL})
	if !p.DeadlineFired() {
		t.Error("DeadlineFired false after the deadline killed the group")
	}
}
