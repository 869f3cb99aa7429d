package run

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/clock"
	"github.com/repolock/repolock/internal/supervise"
	"github.com/repolock/repolock/internal/timing"
)

// loopEnd is how one supervised command ended.
type loopEnd struct {
	res       supervise.Result
	lost      error          // the lock was lost, or could not be proven, while it ran
	forwarded syscall.Signal // the last terminating signal forwarded to it
}

// superviseCommand runs one command under the held locks and returns when
// the command and every process of its group are gone. It never starts the
// command under a lock that is already lost or past its kill deadline.
// This is the one select loop where a lost lock stops the command. The
// main command and the tool's own commands (aux) differ in how they start
// (start: the guard spawned ahead, or a new one), what runs (ps) and
// whether a test watches (started), hence six parameters.
func (r *Runner) superviseCommand(h *held, start func(supervise.Spec) (*supervise.Process, error),
	ps supervise.Spec, tm timing.Model, log hclog.Logger, started func(*supervise.Process)) (loopEnd, error) {
	var out loopEnd
	soft, hard := tm.Deadlines(h.LastSent())
	switch {
	case h.lost() != nil:
		out.lost = fmt.Errorf("before the command started: %w", h.lost())
		return out, nil
	case clock.Now() >= soft:
		out.lost = fmt.Errorf("before the command started: %w", errNotProven(tm, h))
		return out, nil
	}
	// The guard arms these before it forks, and refuses to fork past them.
	ps.Soft, ps.Hard = soft, hard
	proc, err := start(ps)
	if errors.Is(err, supervise.ErrDeadlinePassed) {
		out.lost = fmt.Errorf("before the command started: %w", errNotProven(tm, h))
		return out, nil
	}
	if err != nil {
		return out, err
	}
	w := &watch{h: h, proc: proc, tm: tm, soft: soft, log: log, out: &out}
	w.setDeadline(h.LastSent()) // a renewal may have landed during the start
	log.Debug("command started", "pid", proc.Pid())
	if started != nil {
		started(proc)
	}
	tick := time.NewTicker(deadlinePoll)
	defer tick.Stop()
	lockDone := h.Context().Done()
	for {
		select {
		case <-tick.C:
			w.resumeGuard()
			w.checkSoft()
		case sent := <-h.Leases():
			w.checkSoft() // a renewal confirmed too late does not undo a kill
			w.setDeadline(sent)
		case sig := <-r.Signals:
			w.forward(sig.(syscall.Signal))
		case <-lockDone:
			lockDone = nil
			w.markLost(context.Cause(h.Context()))
		case <-proc.Done():
			// Cases ready together are chosen at random: look again at
			// what a busy loop may not have taken yet.
			w.checkSoft()
			if proc.DeadlineFired() {
				w.markLost(errNotProven(tm, h)) // the guard acted on its own deadline
			}
			if cause := h.lost(); cause != nil {
				w.markLost(cause)
			}
			out.res = proc.Result()
			return out, nil
		}
	}
}

// watch is the state of one supervise loop.
type watch struct {
	h       *held
	proc    *supervise.Process
	tm      timing.Model
	soft    clock.Boottime
	log     hclog.Logger
	out     *loopEnd
	stopped bool
}

// markLost stops the command (the signal first, the log line after) and
// records the first cause.
func (w *watch) markLost(cause error) {
	if !w.stopped {
		w.stopped = true
		if err := w.proc.Stop(); err != nil && !errors.Is(err, supervise.ErrDone) {
			w.log.Warn("stopping the command failed", "error", err)
		}
	}
	if w.out.lost == nil {
		w.out.lost = cause
		w.log.Error("lock lost; stopping the command", "reason", cause)
	}
}

// setDeadline moves the guard's deadlines after a renewal. After a loss
// they are never moved again: a renewal confirmed late does not undo a kill.
func (w *watch) setDeadline(sent clock.Boottime) {
	if w.out.lost != nil {
		return
	}
	soft, hard := w.tm.Deadlines(sent)
	w.soft = soft
	if err := w.proc.SetDeadline(soft, hard); err != nil && !errors.Is(err, supervise.ErrDone) {
		w.markLost(fmt.Errorf("%w: the guard did not take the kill deadline: %v", consullock.ErrLost, err))
	}
}

// resumeGuard continues a guard that something stopped: only a running
// guard enforces a stop and the dead man's switch.
func (w *watch) resumeGuard() {
	if w.proc.ResumeGuard() {
		w.log.Warn("the guard process was stopped (SIGSTOP or a debugger); resumed it")
	}
}

func (w *watch) checkSoft() {
	if clock.Now() >= w.soft {
		w.markLost(errNotProven(w.tm, w.h))
	}
}

// forward passes a signal to the command's group. A terminating one is a
// stop request: the guard SIGKILLs whatever is left after the kill
// timeout, so the run ends, releases and records its end on repolock's
// clock rather than at its supervisor's SIGKILL.
func (w *watch) forward(s syscall.Signal) {
	w.log.Info("forwarding signal to the command's process group", "signal", signalName(s))
	send := w.proc.Signal
	if terminating(s) {
		send = w.proc.Interrupt
		if w.out.forwarded == 0 {
			w.log.Info("the command is SIGKILLed if it has not stopped in time", "kill_timeout", w.tm.KillTimeout.String())
		}
		w.out.forwarded = s
	}
	if err := send(s); err != nil && !errors.Is(err, supervise.ErrDone) {
		w.log.Warn("forwarding signal failed", "error", err)
	}
}
