//go:build linux

package supervise

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// controlWriteTimeout bounds a write to a guard that stopped reading (frozen
// with SIGSTOP, say); the caller then learns of it instead of hanging.
const controlWriteTimeout = 5 * time.Second

// orphanPoll is how often R re-checks a group whose guard died.
const orphanPoll = 10 * time.Millisecond

// Process is a command running under a guard.
type Process struct {
	pid    int
	guard  *guardProc
	events *os.File
	evr    *bufio.Reader // shared by handshake and watch, which must not lose buffered lines

	ctlMu sync.Mutex // serialises control messages and closing
	ctl   *os.File   // nil once done

	resMu  sync.Mutex // separate: a slow control write must not block Result
	result Result

	fired  atomic.Bool // the guard reported that a deadline fired
	reaped atomic.Bool // the guard was reaped: its pid may belong to another process

	exited chan struct{}
	done   chan struct{}
}

// Start resolves spec.Path, starts the guard and through it the command, and
// returns once the command runs. A command that cannot run gives an
// *ExecError; a spec.Soft or spec.Hard that has passed when the guard is
// about to fork gives an error wrapping ErrDeadlinePassed, and nothing ran.
// Start also makes SIGPIPE harmless for the whole program (a write to a
// closed stdout then fails with EPIPE), because repolock dying of a closed
// log pipe would leave a lock to expire instead of being released.
func Start(spec Spec) (*Process, error) {
	spec, err := spec.normalize()
	if err != nil {
		return nil, err
	}
	g, err := spawn(spec.Args[0], spec.Stdout)
	if err != nil {
		return nil, err
	}
	g.ownStdout = spec.Stdout != nil
	return g.Start(spec)
}

// Guard is a guard process started ahead of its command. Spawning it while
// waiting for a lock takes a process start-up off the path between the
// grant and the command (the handoff between holders).
type Guard struct {
	p       *Process
	started bool
	// ownStdout: the guard was spawned with the spec's Stdout as its own.
	ownStdout bool
}

// Spawn starts a guard that waits for the spec of its command; name only
// labels the guard in ps. Close a Guard that is not started.
func Spawn(name string) (*Guard, error) { return spawn(name, nil) }

// spawn starts a guard whose standard output (and so its command's) is
// stdout, or repolock's when nil.
func spawn(name string, stdout *os.File) (*Guard, error) {
	catchSIGPIPE()
	stdio, closeStdio, err := guardStdio()
	if err != nil {
		return nil, err
	}
	defer closeStdio()
	if stdout != nil {
		stdio[1] = stdout
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("supervise: control pipe: %w", err)
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, fmt.Errorf("supervise: event pipe: %w", err)
	}
	attr := &os.ProcAttr{
		Env:   guardEnv(),
		Files: append(stdio, ctlR, evW),
		// Its own process group: a signal to repolock's whole group (GNU
		// timeout, a service manager's KillMode) must not kill the guard
		// together with repolock, or nothing would be left to kill the
		// command's descendants. The guard hears of repolock's end by EOF.
		Sys: &syscall.SysProcAttr{Setpgid: true},
	}
	g, err := startGuard([]string{os.Args[0], GuardArg, name}, attr)
	// Only the guard may hold these ends, or end of file would never come.
	ctlR.Close()
	evW.Close()
	if err != nil {
		ctlW.Close()
		evR.Close()
		return nil, fmt.Errorf("supervise: start guard: %w", err)
	}
	return &Guard{p: &Process{
		guard:  g,
		events: evR,
		evr:    bufio.NewReader(evR),
		ctl:    ctlW,
		exited: make(chan struct{}),
		done:   make(chan struct{}),
	}}, nil
}

// Start hands the guard its command and returns once the command runs. A
// Guard starts one command; on error it is closed.
func (g *Guard) Start(spec Spec) (*Process, error) {
	if g.started {
		return nil, errors.New("supervise: guard already used")
	}
	g.started = true
	if spec.Stdout != nil && !g.ownStdout {
		g.p.abandon()
		return nil, errors.New("supervise: Stdout needs a guard spawned for it; use Start")
	}
	spec, err := spec.normalize()
	if err != nil {
		g.p.abandon()
		return nil, err
	}
	if err := g.p.handshake(spec); err != nil {
		g.p.abandon()
		return nil, err
	}
	go g.p.watch()
	return g.p, nil
}

// Close ends a guard whose command was never started; it does nothing
// after Start.
func (g *Guard) Close() {
	if !g.started {
		g.started = true
		g.p.abandon()
	}
}

// normalize resolves the program and applies defaults.
func (s Spec) normalize() (Spec, error) {
	path, err := Resolve(s.Path)
	if err != nil {
		return s, err
	}
	if len(s.Args) == 0 {
		s.Args = []string{s.Path}
	}
	s.Path = path
	if s.KillSignal == 0 {
		s.KillSignal = DefaultKillSignal
	}
	if s.KillSignal < 1 || s.KillSignal > 64 {
		return s, fmt.Errorf("supervise: invalid kill signal %d", s.KillSignal)
	}
	if s.KillTimeout < 0 {
		return s, fmt.Errorf("supervise: negative kill timeout %v", s.KillTimeout)
	}
	if err := checkDeadline(s.Soft, s.Hard); err != nil {
		return s, err
	}
	return s, nil
}

// handshake sends the spec and waits for started or startfail.
func (p *Process) handshake(spec Spec) error {
	if err := p.write(encodeSpec(spec)); err != nil {
		return err
	}
	l, err := p.evr.ReadString('\n')
	if err != nil {
		return fmt.Errorf("%w (%q)", ErrGuardDied, spec.Args[0])
	}
	verb, rest := splitLine(l)
	switch verb {
	case msgStarted:
		n, err := ints(rest, 1)
		if err != nil {
			return fmt.Errorf("supervise: guard: bad started message: %w", err)
		}
		p.pid = int(n[0])
		return nil
	case msgStartFail:
		return startFailure(spec, rest)
	}
	return fmt.Errorf("supervise: guard: unexpected message %q", l)
}

// startFailure turns a startfail message into the error Start returns.
func startFailure(spec Spec, rest string) error {
	f := strings.SplitN(rest, " ", 3)
	if len(f) != 3 {
		return fmt.Errorf("supervise: guard: bad startfail message %q", rest)
	}
	kind := word(f[0])
	errno, err := strconv.Atoi(f[1])
	msg, err2 := strconv.Unquote(f[2])
	if err != nil || err2 != nil {
		return fmt.Errorf("supervise: guard: bad startfail message %q", rest)
	}
	cmd := spec.Args[0]
	switch kind {
	case failExec:
		e := syscall.Errno(errno)
		return &ExecError{Code: execCode(e), Cmd: cmd, Err: e}
	case failChdir:
		return &ExecError{Code: codeNotExecutable, Cmd: cmd,
			Err: &fs.PathError{Op: "chdir", Path: msg, Err: syscall.Errno(errno)}}
	case failDeadline:
		return fmt.Errorf("%w: %q not started (%s)", ErrDeadlinePassed, cmd, msg)
	}
	return fmt.Errorf("supervise: guard: %s", msg)
}

// abandon tears down a guard whose command never started.
func (p *Process) abandon() {
	p.closeControl() // end of file: the guard exits
	_, _ = io.Copy(io.Discard, p.evr)
	p.events.Close()
	p.guard.wait()
	p.reaped.Store(true)
	p.guard.release()
}

// watch follows the guard's reports until it is gone, then closes Done.
func (p *Process) watch() {
	var exitSeen, empty bool
	for {
		l, err := p.evr.ReadString('\n')
		if err != nil {
			break
		}
		verb, rest := splitLine(l)
		switch verb {
		case msgFired:
			// Before exited and empty, so set before Done closes.
			p.fired.Store(true)
		case msgExited:
			if n, err := ints(rest, 1); err == nil && !exitSeen {
				exitSeen = true
				p.setResult(resultOf(syscall.WaitStatus(uint32(n[0]))))
				close(p.exited)
			}
		case msgEmpty:
			// The group is proven gone: the caller may release the lock
			// now, without waiting for the guard's own exit.
			if exitSeen && !empty {
				empty = true
				close(p.done)
			}
		}
	}
	p.events.Close()
	p.guard.wait()
	p.reaped.Store(true)
	if !empty {
		// The guard died without proving the group gone (someone
		// SIGKILLed it): do its last job here.
		killGroup(p.pid)
	}
	switch {
	case !exitSeen:
		p.setResult(Result{ExitCode: -1, Unknown: true})
		close(p.exited)
	case !empty:
		// The command's code is known, but descendants that left its
		// group may outlive the guard unseen: the end is not clean.
		r := p.Result()
		r.Unknown = true
		p.setResult(r)
	}
	p.closeControl()
	p.guard.release()
	if !empty {
		close(p.done)
	}
}

// killGroup SIGKILLs process group pgid until none of it runs. C died with
// the guard (PDEATHSIG), so the pgid is reserved only while other members
// live: check before each kill, as the guard does.
func killGroup(pgid int) {
	for groupAlive(pgid, true) {
		_ = unix.Kill(-pgid, syscall.SIGKILL)
		time.Sleep(orphanPoll)
	}
}

// Pid is the command's pid, which is also its process group id.
func (p *Process) Pid() int { return p.pid }

// Signal sends sig to the command's whole process group, through the guard.
// Processes that left the group (setsid) do not get it.
func (p *Process) Signal(sig syscall.Signal) error {
	if sig < 1 || sig > 64 {
		return fmt.Errorf("supervise: invalid signal %d", sig)
	}
	return p.send(line(msgSig, int(sig)))
}

// Interrupt sends sig to the command's group, as Signal does, and has the
// guard SIGKILL the group and every descendant after the kill timeout
// unless they are gone by then: a forwarded stop request (Nomad's, a
// service manager's) ends the command within the kill timeout even if it
// ignores the signal, so repolock can release before its own supervisor
// kills it.
func (p *Process) Interrupt(sig syscall.Signal) error {
	if sig < 1 || sig > 64 {
		return fmt.Errorf("supervise: invalid signal %d", sig)
	}
	return p.send(line(msgInterrupt, int(sig)))
}

// SetDeadline arms the guard's dead man's switch: the kill signal to the
// group (and to every process that left it) at soft, SIGKILL at the earlier
// of hard and soft plus the kill timeout. It replaces any earlier deadline,
// so calling it again extends it; SetDeadline(0, 0) disarms it. The guard
// acts on it even when repolock is frozen. Once a deadline has fired
// (DeadlineFired), it is final: the guard ignores later calls, which still
// return nil while the guard runs.
func (p *Process) SetDeadline(soft, hard Boottime) error {
	if err := checkDeadline(soft, hard); err != nil {
		return err
	}
	return p.send(line(msgDeadline, int64(soft), int64(hard)))
}

// DeadlineFired reports whether the guard fired the soft or hard deadline
// (of Spec or SetDeadline). It becomes true soon after the firing, before
// Exited is closed if the firing killed the command, and is final once Done
// is closed. It stays false if the guard was killed before it could tell.
func (p *Process) DeadlineFired() bool { return p.fired.Load() }

// ResumeGuard continues the guard if something stopped it (SIGSTOP, a
// debugger) and reports whether it did. A stopped guard carries out neither
// a stop nor its dead man's switch while the command runs on, so repolock
// calls this on every poll of its loop: a frozen guard delays a stop by one
// poll, never past the kill deadline. Only repolock and its guard both
// frozen (a frozen machine) leave the command unstopped.
func (p *Process) ResumeGuard() bool {
	if p.reaped.Load() {
		return false
	}
	state, _, ok := procStat(strconv.Itoa(p.guard.pid))
	if !ok || (state != 'T' && state != 't') {
		return false
	}
	return unix.Kill(p.guard.pid, syscall.SIGCONT) == nil
}

// Stop sends the kill signal to the group and to every process that left
// it now, and SIGKILL after the kill timeout, unless all are gone by then.
// Repeated calls do nothing more.
func (p *Process) Stop() error { return p.send(line(msgStop)) }

// Exited is closed when the command itself was reaped (or, when the guard
// died, once it is known to be dead).
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Done is closed when the command was reaped and no process of its group is
// left, nor any other descendant of the guard (the guard says so, or it died
// and repolock checked the group itself). Only then may the lock be released.
func (p *Process) Done() <-chan struct{} { return p.done }

// Result is how the command ended; it is final once Exited is closed.
func (p *Process) Result() Result {
	p.resMu.Lock()
	defer p.resMu.Unlock()
	return p.result
}

func (p *Process) setResult(r Result) {
	p.resMu.Lock()
	p.result = r
	p.resMu.Unlock()
}

// send writes one or more complete messages to the guard.
func (p *Process) send(msg string) error {
	err := p.write(msg)
	if errors.Is(err, syscall.EPIPE) {
		// The guard is gone: it exits right after reporting the group
		// empty, and the report may still be unread. Its report (or, if
		// it died, repolock's own check) settles the outcome, not this
		// write. Wait without the lock: watch needs it to finish.
		select {
		case <-p.done:
			return ErrDone
		case <-time.After(controlWriteTimeout):
		}
	}
	return err
}

func (p *Process) write(msg string) error {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if p.ctl == nil {
		return ErrDone
	}
	select {
	case <-p.done:
		return ErrDone // the group is gone; the guard is only exiting
	default:
	}
	_ = p.ctl.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	if _, err := io.WriteString(p.ctl, msg); err != nil {
		return fmt.Errorf("supervise: write to guard: %w", err)
	}
	return nil
}

func (p *Process) closeControl() {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if p.ctl != nil {
		p.ctl.Close()
		p.ctl = nil
	}
}
