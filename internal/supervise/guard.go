//go:build linux

package supervise

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// GuardArg, as os.Args[1], makes the repolock binary act as the guard.
const GuardArg = "__repolock-guard"

// File descriptors of the control pipes in the guard.
const (
	guardCtlFd    = 3 // R→G
	guardEventsFd = 4 // G→R
)

// guardPoll is how often the guard re-checks a group or descendants that
// outlived the command; the kernel gives no event when a non-child process
// exits.
const guardPoll = 10 * time.Millisecond

// guardSurvives lists signals a terminal or supervisor sends to R's whole
// process group, which G shares; R forwards them explicitly instead. The
// terminal stop signals are here because a guard stopped by Ctrl-Z could not
// enforce the dead man's switch while the command, in its own group, runs on.
var guardSurvives = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE,
	syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU,
}

// MaybeRunGuard runs the guard and exits if this process was started as
// one; otherwise it returns at once. Call it first in main and TestMain.
func MaybeRunGuard() {
	if len(os.Args) > 1 && os.Args[1] == GuardArg {
		os.Exit(runGuard())
	}
}

// guard is the state of the guard's single event loop.
type guard struct {
	events      *os.File
	self        int // the guard's own pid, root of the descendants it kills
	pgid        int // the command's pid and process group
	killSig     syscall.Signal
	killTimeout time.Duration

	exited    bool         // the command was reaped
	rGone     bool         // the control pipe reached EOF
	stopping  bool         // the kill signal was sent by stop, a deadline or after exit
	signalled map[int]bool // escapees (outside the group) that got the kill signal
	sigkilled bool         // SIGKILL was sent to the group and descendants
	soft      Boottime     // dead man's switch, 0 when unarmed
	hard      Boottime
	softDone  bool
	hardDone  bool
	fired     bool     // soft or hard fired: the deadline is final
	killAt    Boottime // SIGKILL after the kill signal, 0 when none
}

// runGuard is the guard process's main: it reads its command's spec, arms
// the first deadline, forks the command and runs the loop, in this order
// and on one locked OS thread (PDEATHSIG is tied to the thread that forks).
func runGuard() int {
	// PDEATHSIG fires when the thread that forked the command exits. The
	// main goroutine stays locked to its thread until os.Exit, so only the
	// guard's own death can kill the command.
	runtime.LockOSThread()
	sigchld := catchSignals()

	// The command must not inherit the control pipes: a copy of fd 3 would
	// hide R's death, a copy of fd 4 would delay R's end of file.
	syscall.CloseOnExec(guardCtlFd)
	syscall.CloseOnExec(guardEventsFd)
	g := &guard{events: os.NewFile(guardEventsFd, "repolock-events"), self: os.Getpid()}
	ctl := bufio.NewReader(os.NewFile(guardCtlFd, "repolock-control"))

	spec, err := decodeSpec(ctl)
	if err != nil {
		// R died or is not R: there is nothing to supervise. End of file
		// before any message is a guard spawned ahead and closed unused
		// (the lock was not acquired): nothing to say.
		if !errors.Is(err, io.EOF) {
			fmt.Fprintf(os.Stderr, "repolock guard: %v\n", err)
		}
		return 2
	}
	g.killSig, g.killTimeout = spec.KillSignal, spec.KillTimeout
	// The dead man's switch is armed before the fork: from the first
	// instruction of the command on, it holds even if R freezes now.
	g.soft, g.hard = spec.Soft, spec.Hard
	if code, ok := g.prepare(spec); !ok {
		return code
	}
	pid, err := syscall.ForkExec(spec.Path, spec.Args, &syscall.ProcAttr{
		Env:   spec.Env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		g.send(line(msgStartFail, failExec, int(errnoOf(err)), err.Error()))
		return 0
	}
	g.pgid = pid
	g.send(line(msgStarted, pid))

	cmds := make(chan string)
	go readCommands(ctl, cmds)
	g.loop(cmds, sigchld, newBootTimer())
	return 0
}

// catchSignals makes the guard survive the signals meant for the command,
// and returns the channel of SIGCHLD. Catch rather than ignore: a caught
// signal reverts to its default across exec, an ignored one would be
// inherited by the command. Signals already ignored when we started
// (nohup) stay ignored for the command.
func catchSignals() <-chan os.Signal {
	caught := make(chan os.Signal, 1) // never read: dropping is the point
	for _, s := range guardSurvives {
		if !signal.Ignored(s) {
			signal.Notify(caught, s)
		}
	}
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	return sigchld
}

// prepare does what must precede the fork: become the subreaper of the
// command's descendants, enter its directory, and refuse a deadline that
// has passed. When it fails it has told R, and the guard exits with code.
func (g *guard) prepare(spec Spec) (code int, ok bool) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		g.send(line(msgStartFail, failGuard, 0, "set child subreaper: "+err.Error()))
		return 2, false
	}
	if spec.Dir != "" {
		if err := os.Chdir(spec.Dir); err != nil {
			g.send(line(msgStartFail, failChdir, int(errnoOf(err)), spec.Dir))
			return 0, false
		}
	}
	if now := Now(); (g.soft != 0 && now >= g.soft) || (g.hard != 0 && now >= g.hard) {
		late := now.Sub(g.soft)
		if g.soft == 0 {
			late = now.Sub(g.hard)
		}
		g.send(line(msgStartFail, failDeadline, 0, fmt.Sprintf("deadline passed %v ago", late)))
		return 0, false
	}
	return 0, true
}

// readCommands forwards control lines until R's end of the pipe closes.
func readCommands(r *bufio.Reader, out chan<- string) {
	defer close(out)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		out <- l
	}
}

// loop runs until the command was reaped, its group is empty and the guard
// has no child left (as subreaper it inherits every orphaned descendant, so
// then none is left at all).
func (g *guard) loop(cmds <-chan string, sigchld <-chan os.Signal, timer *bootTimer) {
	var poll <-chan time.Time
	for {
		g.fire()
		timer.set(g.nextDue())
		if g.exited && !g.reap() && !groupAlive(g.pgid, g.sigkilled) {
			g.send(line(msgEmpty))
			return
		}
		if g.exited && !g.stopping {
			// Members and descendants left behind must not outlive the
			// command for long. (A command that leaves nothing behind is
			// reported empty above without this walk of /proc.)
			g.escalate(Now())
		}
		if poll == nil && (g.exited || g.rGone || g.stopping || g.sigkilled) {
			poll = time.NewTicker(guardPoll).C
		}
		select {
		case l, ok := <-cmds:
			if !ok {
				cmds = nil
				g.rGone = true
				g.sigkill()
				continue
			}
			g.control(l)
		case <-sigchld:
			g.reap()
		case <-timer.C:
		case <-poll:
			g.reap()
			switch {
			case g.sigkilled:
				g.sigkill() // catches members forked since the last one
			case g.stopping && g.exited:
				g.signalEscapees(g.killSig) // catches escapees missed in transit
			}
		}
	}
}

// control applies one control message from R.
func (g *guard) control(l string) {
	verb, rest := splitLine(l)
	var err error
	switch verb {
	case msgSig:
		var n []int64
		if n, err = ints(rest, 1); err == nil {
			g.kill(syscall.Signal(n[0]))
		}
	case msgDeadline:
		var n []int64
		// A deadline that fired is final: a renewal confirmed late must
		// not re-arm it after the kill signal went out.
		if n, err = ints(rest, 2); err == nil && !g.fired {
			g.soft, g.hard = Boottime(n[0]), Boottime(n[1])
			g.softDone, g.hardDone = false, false
		}
	case msgStop:
		g.escalate(Now())
	case msgInterrupt:
		var n []int64
		if n, err = ints(rest, 1); err == nil {
			g.kill(syscall.Signal(n[0]))
			if g.killAt == 0 {
				g.killAt = Now().Add(g.killTimeout)
			}
		}
	default:
		err = errors.New("unknown message")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "repolock guard: bad control message %q: %v\n", l, err)
	}
}

// fire acts on every deadline that has passed. After the soft deadline,
// SIGKILL follows at the earlier of the hard deadline (still armed) and the
// kill timeout (killAt).
func (g *guard) fire() {
	now := Now()
	if g.soft != 0 && !g.softDone && now >= g.soft {
		g.softDone = true
		g.deadlineFired()
		g.escalate(now)
	}
	if g.hard != 0 && !g.hardDone && now >= g.hard {
		g.hardDone = true
		g.deadlineFired()
		g.sigkill()
	}
	if g.killAt != 0 && now >= g.killAt {
		g.killAt = 0
		g.sigkill()
	}
}

// nextDue is the earliest pending deadline, or 0.
func (g *guard) nextDue() Boottime {
	var next Boottime
	for _, t := range []struct {
		at      Boottime
		pending bool
	}{{g.soft, !g.softDone}, {g.hard, !g.hardDone}, {g.killAt, true}} {
		if t.at != 0 && t.pending && (next == 0 || t.at < next) {
			next = t.at
		}
	}
	return next
}

// deadlineFired makes the deadline final and tells R, once. It is sent
// before the signal, so R reads it before exited and empty.
func (g *guard) deadlineFired() {
	if !g.fired {
		g.fired = true
		g.send(line(msgFired))
	}
}

// escalate sends the kill signal once and schedules SIGKILL at now plus
// the kill timeout.
func (g *guard) escalate(now Boottime) {
	if g.stopping {
		return
	}
	g.stopping = true
	g.killAll(g.killSig)
	g.killAt = now.Add(g.killTimeout)
}

func (g *guard) sigkill() {
	g.sigkilled = true
	g.killAll(syscall.SIGKILL)
}

// killAll signals the group and every descendant of the guard, which
// includes processes that left the group (setsid, setpgid) and orphans the
// guard inherited as subreaper.
//
// The group is signalled first: it holds the command, and reading the
// process tree from /proc costs about half a millisecond that the kill
// signal should not wait for. A process that left the group while its
// parent dies of that signal may be in transit to the guard during the
// walk and be missed; while stopping, every poll walks the tree again and
// signals the escapees not yet signalled, and the SIGKILL phase repeats
// until the guard has no child. Group members get the group signal only,
// so a trap runs once. A pid read from /proc could in theory be reaped and
// reused before the signal; as for the group, that needs the pid space to
// wrap within microseconds.
func (g *guard) killAll(sig syscall.Signal) {
	g.kill(sig)
	// While the command runs, its own helpers outside the group (restic
	// starts ssh in a process group of its own) must stay up for its
	// graceful shutdown; they get the kill signal once it is gone, and
	// SIGKILL with everything else.
	if g.exited || sig == syscall.SIGKILL {
		g.signalEscapees(sig)
	}
}

// signalEscapees signals the guard's descendants outside the command's
// group; with the kill signal, each one once.
func (g *guard) signalEscapees(sig syscall.Signal) {
	// Rebuilt from each walk, so a pid reused by a new escapee is not
	// taken for one already signalled.
	seen := map[int]bool{}
	for _, pid := range descendants(g.self) {
		if pgid, err := unix.Getpgid(pid); err != nil || pgid == g.pgid {
			continue
		}
		if sig != syscall.SIGKILL {
			seen[pid] = true
			if g.signalled[pid] {
				continue
			}
		}
		_ = unix.Kill(pid, sig)
	}
	if sig != syscall.SIGKILL {
		g.signalled = seen
	}
}

// kill signals the whole group. Once the command was reaped the pgid is
// only reserved while a member lives, so check first; the remaining window
// is microseconds, and reusing the number needs the pid space to wrap.
func (g *guard) kill(sig syscall.Signal) {
	if g.exited && unix.Kill(-g.pgid, 0) == syscall.ESRCH {
		return
	}
	_ = unix.Kill(-g.pgid, sig)
}

// reap collects every exited child: the command and, as subreaper, any
// orphaned descendant. It reports whether a child is left.
func (g *guard) reap() (children bool) {
	for {
		var ws unix.WaitStatus
		// __WALL: also children whose exit signal is not SIGCHLD.
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.ECHILD:
			return false
		case err != nil:
			return true // cannot tell: assume one is left, poll again
		case pid == 0:
			return true
		}
		if pid == g.pgid && !g.exited {
			g.exited = true
			g.send(line(msgExited, uint32(ws)))
		}
	}
}

// send reports to R; if R is gone there is no one to tell.
func (g *guard) send(msg string) {
	_, _ = io.WriteString(g.events, msg)
}

// errnoOf extracts the errno from err, or EINVAL.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EINVAL
}
