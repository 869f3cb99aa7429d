// Package run joins the pieces: it takes the lock, starts the command under
// the supervisor, keeps the command's kill deadlines in step with the
// lock's renewals, and turns the outcome into one error (nil for success)
// that cmd/repolock maps to an exit code.
package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/clock"
	"github.com/repolock/repolock/internal/supervise"
)

// Spec is one run: what to lock, how, and what to run under the lock.
type Spec struct {
	Job        string // config job name, "" for `repolock exec`
	Repository string // repository name, or the key for `repolock exec`
	Key        string // lock key
	Prefix     string // KV prefix
	// SessionNode is the catalog node the session is bound to ("" for
	// consullock.DefaultNode).
	SessionNode string
	Mode        consullock.Mode
	Args        []string // the command; Args[0] as the user wrote it
	Env         []string // the command's environment, without REPOLOCK_*
	Dir         string
	Timing      consullock.Timing
	Wait        time.Duration
	Skip        bool // on_busy = "skip": a busy lock is not an error
	KillSignal  syscall.Signal
	// Classify names an exit code for logs and the last-run record.
	Classify func(code int) (class string, success bool)
	// Prepare commands run under the lock before Args, only when it is held
	// exclusively (clearing a tool's stale native locks is safe only then).
	Prepare [][]string
	Holder  consullock.Holder
}

// Runner runs specs against one Consul client.
type Runner struct {
	Client  *api.Client
	Log     hclog.Logger
	Signals <-chan os.Signal // signals to forward to the command
}

// deadlinePoll is how often the loop compares CLOCK_BOOTTIME with the kill
// deadline; a Go timer alone would not count time spent suspended.
const deadlinePoll = 25 * time.Millisecond

// ErrSkipped is returned when the lock was busy and Spec.Skip is set.
var ErrSkipped = errors.New("lock busy; run skipped (on_busy = \"skip\")")

// terminating are the forwarded signals that end a run; SIGUSR1/2 are
// passed on but stop nothing.
func terminating(s syscall.Signal) bool {
	return s == syscall.SIGINT || s == syscall.SIGTERM || s == syscall.SIGHUP || s == syscall.SIGQUIT
}

// Run executes spec and returns nil only when the command ran to its end
// with status 0 under a lock that held throughout.
func (r *Runner) Run(ctx context.Context, spec Spec) error {
	path, err := supervise.Resolve(spec.Args[0])
	if err != nil {
		return err // 126/127 before anything touched Consul
	}
	// The guard starts while we wait, so the grant is followed by the
	// command without a process start-up in between.
	guard, err := supervise.Spawn(spec.Args[0])
	if err != nil {
		return err
	}
	defer guard.Close()
	lock, err := r.acquire(ctx, spec)
	if err != nil {
		if errors.Is(err, consullock.ErrTimeout) && spec.Skip {
			r.Log.Info("lock busy; skipping", "key", spec.Key, "reason", err)
			return ErrSkipped
		}
		return err
	}
	log := r.Log.With("key", spec.Key, "session", lock.Session(), "fencing_token", lock.Token())
	log.Info("lock acquired", "mode", spec.Mode)
	started := time.Now()

	if spec.Mode == consullock.Exclusive {
		for _, argv := range spec.Prepare {
			out := r.prepare(lock, spec, argv, log)
			if out.lost != nil {
				r.finish(lock, spec, log, true)
				return &LockLostError{Cause: out.lost}
			}
			if terminating(out.forwarded) {
				r.finish(lock, spec, log, false) // the cleanup ended: nothing runs
				return &InterruptedError{Signal: out.forwarded, During: "during the native lock cleanup"}
			}
		}
	}
	// A stop request that arrived since the grant: do not start at all.
	select {
	case sig := <-r.Signals:
		if s, _ := sig.(syscall.Signal); terminating(s) {
			r.finish(lock, spec, log, false)
			return &InterruptedError{Signal: s, During: "before the command started"}
		}
	default:
	}

	env := append(append([]string(nil), spec.Env...),
		"REPOLOCK_HELD=1",
		"REPOLOCK_REPOSITORY="+spec.Repository,
		"REPOLOCK_KEY="+spec.Key,
		"REPOLOCK_MODE="+string(spec.Mode),
		"REPOLOCK_SESSION="+lock.Session(),
		"REPOLOCK_FENCING_TOKEN="+strconv.FormatUint(lock.Token(), 10),
	)
	out, err := r.supervise(lock, guard.Start, supervise.Spec{
		Path: path, Args: spec.Args, Env: env, Dir: spec.Dir,
		KillSignal: spec.KillSignal, KillTimeout: spec.Timing.KillTimeout,
	}, log)
	if err != nil {
		// The command never started: nothing ran, so a release is safe.
		r.finish(lock, spec, log, false)
		return err
	}

	res := out.res
	last := consullock.LastRun{Job: spec.Job, Mode: spec.Mode, Exit: res.ExitCode, Started: started.UTC(),
		Ended: time.Now().UTC(), Holder: spec.Holder, Token: lock.Token(), Session: lock.Session()}
	var outcome error
	switch {
	case out.lost != nil:
		last.Exit, last.Class, last.LockLost = 76, "lock lost", true
		outcome = &LockLostError{Cause: out.lost}
	case res.Unknown:
		last.Exit, last.Class = 70, "unknown"
		outcome = &UnknownStateError{Err: errors.New("guard exited without a status")}
	default:
		class := "success"
		if spec.Classify != nil {
			class, _ = spec.Classify(res.ExitCode)
		}
		last.Class = class
		log.Info("command finished", "exit", res.ExitCode, "class", class, "duration", time.Since(started).Round(time.Millisecond))
		switch {
		case res.ExitCode != 0:
			outcome = &ChildExitError{Code: res.ExitCode, Class: class}
		case out.forwarded != 0:
			last.Exit = 128 + int(out.forwarded)
			outcome = &InterruptedError{Signal: out.forwarded, During: "while the command ran (it exited 0)"}
		}
	}
	// Release first: the next waiter should not wait for the history.
	r.finish(lock, spec, log, out.lost != nil || res.Unknown)
	wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if err := consullock.WriteLast(wctx, r.Client, spec.Prefix, spec.Key, last); err != nil {
		log.Warn("could not record the last run", "error", err)
	}
	cancel()
	return outcome
}

// acquire takes the lock; a terminating signal while waiting abandons the
// wait.
func (r *Runner) acquire(ctx context.Context, spec Spec) (*consullock.Lock, error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		lock *consullock.Lock
		err  error
	}
	done := make(chan result, 1)
	go func() {
		l, err := consullock.Acquire(actx, consullock.Config{
			Client: r.Client, Prefix: spec.Prefix, Key: spec.Key, Node: spec.SessionNode, Mode: spec.Mode,
			Timing: spec.Timing, Wait: spec.Wait, Holder: spec.Holder, Logger: r.Log,
			OnBusy: func(ahead []consullock.Record) {
				h := ahead[0]
				r.Log.Info("lock busy; waiting", "key", spec.Key, "wait", spec.Wait, "holder",
					fmt.Sprintf("%s@%s pid %d", h.Holder.User, h.Holder.Host, h.Holder.PID), "holder_mode", h.Mode, "ahead", len(ahead))
			},
		})
		done <- result{l, err}
	}()
	for {
		select {
		case res := <-done:
			return res.lock, res.err
		case sig := <-r.Signals:
			s, _ := sig.(syscall.Signal)
			if !terminating(s) {
				r.Log.Info("no command runs yet; signal not forwarded", "signal", signalName(s))
				continue
			}
			cancel()
			if res := <-done; res.lock != nil {
				rctx, rcancel := context.WithTimeout(context.Background(), max(spec.Timing.RenewInterval, 2*time.Second))
				_ = res.lock.Release(rctx)
				rcancel()
			}
			return nil, &InterruptedError{Signal: s, During: "while waiting for the lock"}
		}
	}
}

// outcome is how one supervised command ended.
type outcome struct {
	res       supervise.Result
	lost      error          // the lock was lost, or could not be proven, while it ran
	forwarded syscall.Signal // the last terminating signal forwarded to it
}

// errNotProven is the loss the kill deadline implies: the guard stops the
// command because no renewal was confirmed in time, even if Consul has not
// expired the session yet.
func errNotProven(t consullock.Timing) error {
	return fmt.Errorf("%w: no renewal confirmed by the kill deadline (ttl %s − kill_timeout %s − margin %s after the last one was sent)",
		consullock.ErrLost, t.TTL, t.KillTimeout, t.Margin)
}

// supervise runs one command under the lock and returns when the command
// and every process of its group are gone. It never starts the command
// under a lock that is already lost or past its kill deadline.
func (r *Runner) supervise(lock *consullock.Lock, start func(supervise.Spec) (*supervise.Process, error),
	ps supervise.Spec, log hclog.Logger) (outcome, error) {
	var out outcome
	timing := lock.Timing()
	soft, hard := timing.Deadlines(lock.LastSent())
	switch {
	case lock.Context().Err() != nil:
		out.lost = fmt.Errorf("before the command started: %w", context.Cause(lock.Context()))
		return out, nil
	case clock.Now() >= soft:
		out.lost = fmt.Errorf("before the command started: %w", errNotProven(timing))
		return out, nil
	}
	// The guard arms these before it forks, and refuses to fork past them.
	ps.Soft, ps.Hard = soft, hard
	proc, err := start(ps)
	if errors.Is(err, supervise.ErrDeadlinePassed) {
		out.lost = fmt.Errorf("before the command started: %w", errNotProven(timing))
		return out, nil
	}
	if err != nil {
		return out, err
	}
	stopped := false
	markLost := func(cause error) {
		if !stopped { // the signal first, the log line after
			stopped = true
			if err := proc.Stop(); err != nil && !errors.Is(err, supervise.ErrDone) {
				log.Warn("stopping the command failed", "error", err)
			}
		}
		if out.lost == nil {
			out.lost = cause
			log.Error("lock lost; stopping the command", "reason", cause)
		}
	}
	// After a loss the deadlines are never moved again: a renewal
	// confirmed late does not undo a kill.
	setDeadline := func(sent clock.Boottime) {
		if out.lost != nil {
			return
		}
		soft, hard = timing.Deadlines(sent)
		if err := proc.SetDeadline(soft, hard); err != nil && !errors.Is(err, supervise.ErrDone) {
			markLost(fmt.Errorf("%w: the guard did not take the kill deadline: %v", consullock.ErrLost, err))
		}
	}
	checkSoft := func() {
		if clock.Now() >= soft {
			markLost(errNotProven(timing))
		}
	}
	setDeadline(lock.LastSent()) // a renewal may have landed during the start
	log.Debug("command started", "pid", proc.Pid())
	tick := time.NewTicker(deadlinePoll)
	defer tick.Stop()

	lockDone := lock.Context().Done()
	for {
		select {
		case <-tick.C:
			checkSoft()
		case sent := <-lock.Leases():
			checkSoft() // a renewal confirmed too late does not undo a kill
			setDeadline(sent)
		case sig := <-r.Signals:
			s, _ := sig.(syscall.Signal)
			log.Info("forwarding signal to the command's process group", "signal", signalName(s))
			if err := proc.Signal(s); err != nil && !errors.Is(err, supervise.ErrDone) {
				log.Warn("forwarding signal failed", "error", err)
			}
			if terminating(s) {
				out.forwarded = s
			}
		case <-lockDone:
			lockDone = nil
			markLost(context.Cause(lock.Context()))
		case <-proc.Done():
			// Cases ready together are chosen at random: look again at
			// what a busy loop may not have taken yet.
			checkSoft()
			if proc.DeadlineFired() {
				markLost(errNotProven(timing)) // the guard acted on its own deadline
			}
			if cause := context.Cause(lock.Context()); lock.Context().Err() != nil && errors.Is(cause, consullock.ErrLost) {
				markLost(cause)
			}
			out.res = proc.Result()
			return out, nil
		}
	}
}

// prepare runs one preparation command (a native stale-lock cleanup) under
// the lock. Its failure is logged: the main command reports the tool's own
// lock error if the cleanup did not help. A loss or a stop request is in
// the outcome: then the main command must not start.
func (r *Runner) prepare(lock *consullock.Lock, spec Spec, argv []string, log hclog.Logger) outcome {
	path, err := supervise.Resolve(argv[0])
	if err != nil {
		log.Warn("native lock cleanup not run", "command", argv[0], "error", err)
		return outcome{}
	}
	log.Info("clearing native locks under the exclusive cluster lock", "command", argv)
	out, err := r.supervise(lock, supervise.Start, supervise.Spec{Path: path, Args: argv, Env: spec.Env, Dir: spec.Dir,
		KillSignal: spec.KillSignal, KillTimeout: spec.Timing.KillTimeout}, log)
	switch {
	case err != nil:
		log.Warn("native lock cleanup failed to start", "error", err)
	case out.lost != nil:
		log.Warn("lock lost during native lock cleanup", "reason", out.lost)
	case out.res.ExitCode != 0:
		log.Warn("native lock cleanup failed", "exit", out.res.ExitCode)
	}
	return out
}

// finish releases the lock after a clean end, or destroys the session on
// doubt. Either way the session is gone or expires by TTL.
func (r *Runner) finish(lock *consullock.Lock, spec Spec, log hclog.Logger, doubt bool) {
	ctx, cancel := context.WithTimeout(context.Background(), max(spec.Timing.RenewInterval, 2*time.Second))
	defer cancel()
	if doubt {
		if err := lock.Invalidate(ctx); err != nil {
			log.Warn("could not destroy the session; it expires by TTL", "error", err)
		}
		return
	}
	if err := lock.Release(ctx); err != nil {
		log.Warn("could not release the lock; it expires by TTL", "error", err)
		return
	}
	log.Info("lock released")
}
