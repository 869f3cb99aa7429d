// Package run joins the pieces: it takes the locks, starts the command
// under the supervisor, keeps the command's kill deadlines in step with
// the locks' renewals, heals a backup tool's stale native locks, and turns
// the outcome into one error (nil for success) that carries its exit code.
package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/history"
	"github.com/repolock/repolock/internal/metrics"
	"github.com/repolock/repolock/internal/supervise"
	"github.com/repolock/repolock/internal/timing"
	"github.com/repolock/repolock/plugin"
)

// Spec is one run, as package plan builds it: what to lock, how, and what
// to run under the locks.
type Spec struct {
	Job string // config job name, "" for `repolock exec`
	// Targets are the locks to take, in this order (plan sorts them by
	// key); exactly one is Primary, the job's own repository.
	Targets     []Target
	Prefix      string // KV prefix
	SessionNode string // catalog node sessions are bound to ("" for the default)
	Args        []string
	// Env is the command's environment without REPOLOCK_*, which Run
	// appends last (see plan.Environment for the order).
	Env        []string
	Dir        string
	Timing     timing.Model
	Wait       time.Duration
	Skip       bool // on_busy = "skip": a busy lock is not an error
	KillSignal syscall.Signal
	// Classify names an exit code for logs and the last-run record.
	Classify func(code int) (class string, success bool)
	// Busy reports the tool's "native lock busy" exit code.
	Busy   func(code int) bool
	Holder consullock.Holder
	// Notes are choices made for this run that the last record keeps
	// (a kill_timeout shortened to fit Nomad's).
	Notes []string
}

// Target is one repository lock of a run.
type Target struct {
	Repository string // repository name, or the key for `repolock exec -key`
	Key        string
	Mode       consullock.Mode
	Slots      int  // caps the key's shared holders (exec -slots, a limit's slots); 0: no cap
	Limit      bool // Key names a limit's key (a slot of it), not a repository's
	Primary    bool
	Native     *Native // what may be done about the tool's own locks; nil: nothing
}

// SortTargets puts targets in the one global order every run takes its
// locks in, so that no two runs can deadlock: limits' keys, then
// repositories' (as their KV folders sort), each by key.
func SortTargets(ts []Target) {
	slices.SortFunc(ts, func(a, b Target) int {
		if a.Limit != b.Limit {
			if a.Limit {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// Runner runs specs against one Consul client.
type Runner struct {
	Client *api.Client
	// SessionClient, if set, creates the sessions (consullock.Config's
	// SessionClient): a server agent, when Client is a client agent and
	// the locks live in another datacenter.
	SessionClient *api.Client
	// Datacenter is the one Client's requests name, where the locks live
	// ("" for the agent's own): consullock.Config's Datacenter.
	Datacenter string
	Log        hclog.Logger
	Signals    <-chan os.Signal // signals to forward to the command
	// Started, when set, is called with each command's process once it
	// runs (tests use it to act on the command mid-run).
	Started func(*supervise.Process)
	// OnStart, when set, is called with the run's REPOLOCK_* variables
	// once the lock is held, right before the command starts (start hooks).
	OnStart func(vars []string)
	// Summary is what the last Run did, for metrics and hooks.
	Summary Summary
}

// Summary is what a Run did: when it began, was first granted its lock and
// ended, in which mode, with which exit, and how many native locks it
// removed. Granted is zero when no lock was granted.
type Summary struct {
	Started, Granted, Ended time.Time
	Mode                    consullock.Mode
	Exit                    int
	NativeLocksCleared      int
	// Vars are the REPOLOCK_* variables for hooks: those the command got
	// (of the last attempt) and REPOLOCK_JOB, or, when no lock was
	// granted, those naming the lock asked for.
	Vars []string
	// InterruptedBy names the stop signal forwarded to the command, if any.
	InterruptedBy string
	// RenewRTT holds the round trip of every confirmed renewal of the
	// run's sessions (metrics.NewRenewRTT).
	RenewRTT prometheus.Histogram
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
// with status 0 under locks that held throughout. When the command exits
// with its tool's "native lock busy" code and a repository's unlock_native
// allows it, Run heals (see heal) and runs the command once more.
func (r *Runner) Run(ctx context.Context, spec Spec) error {
	r.Summary = Summary{Started: time.Now(), Vars: hookVars(spec, spec.primary(), nil), RenewRTT: metrics.NewRenewRTT()}
	defer func() { r.Summary.Ended = time.Now() }()
	first := r.attempt(ctx, spec, nil)
	if !first.busy || !healable(spec) {
		return first.err
	}
	cleared, retry, err := r.heal(ctx, spec)
	var lost *LockLostError
	var stopped *InterruptedError
	switch {
	case errors.As(err, &lost), errors.As(err, &stopped):
		return err // 76 or 128+N: what ended the heal, not the busy exit
	case err != nil:
		r.Log.Error("native locks not healed", "error", err)
		return first.err
	case !retry:
		return first.err
	}
	r.Log.Info("native locks healed; running the command once more", "cleared", len(cleared))
	if cleared == nil {
		cleared = []plugin.NativeLock{} // healed, by a tool that cannot say what it removed
	}
	second := r.attempt(ctx, spec, cleared).err
	if errors.Is(second, ErrSkipped) {
		return first.err // busy again after the heal: the run did not happen
	}
	return second
}

// attemptEnd is how one attempt ended.
type attemptEnd struct {
	err  error // the outcome; nil for success
	busy bool  // the command exited with its tool's native-lock-busy code under locks that held
}

// attempt takes the locks, runs the command once and releases. cleared
// (non-nil on a second attempt) are native locks a heal removed before it.
func (r *Runner) attempt(ctx context.Context, spec Spec, cleared []plugin.NativeLock) attemptEnd {
	path, err := supervise.Resolve(spec.Args[0])
	if err != nil {
		return attemptEnd{err: err} // 126/127 before anything touched Consul
	}
	// The guard starts while we wait, so the grant is followed by the
	// command without a process start-up in between.
	guard, err := supervise.Spawn(spec.Args[0])
	if err != nil {
		return attemptEnd{err: err}
	}
	defer guard.Close()
	h, err := r.acquire(ctx, spec, spec.Targets)
	if err != nil {
		if errors.Is(err, consullock.ErrTimeout) && spec.Skip {
			r.Log.Info("lock busy; skipping", "reason", err)
			return attemptEnd{err: ErrSkipped}
		}
		return attemptEnd{err: err}
	}
	lock, primary := h.primary()
	log := r.Log.With("key", primary.Key, "session", lock.Session(), "fencing_token", lock.Token())
	log.Info("lock acquired", "mode", primary.Mode)
	if r.Summary.Granted.IsZero() {
		r.Summary.Granted = time.Now()
	}
	rec := &history.Run{Job: spec.Job, Mode: primary.Mode, Started: time.Now().UTC(), Holder: spec.Holder,
		Token: lock.Token(), Session: lock.Session(), NativeLocksCleared: cleared, Notes: spec.Notes}
	if cleared != nil {
		rec.Attempts = 2
	}
	res := r.command(h, guard, path, spec, rec, log)
	rec.Ended = time.Now().UTC()
	o := Of(res.err)
	rec.Exit, rec.Class, rec.LockLost = o.Code, o.Class, o.Kind == Lost
	r.Summary.Mode, r.Summary.Exit, r.Summary.InterruptedBy = rec.Mode, rec.Exit, rec.InterruptedBy
	r.Summary.NativeLocksCleared = len(rec.NativeLocksCleared)
	// Release first: the next waiter should not wait for the history.
	r.finish(h, log, res.doubt)
	wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if err := history.Write(wctx, r.Client, spec.Prefix, primary.Key, *rec); err != nil {
		log.Warn("could not record the last run", "error", err)
	}
	cancel()
	return attemptEnd{err: res.err, busy: res.busy}
}

// commandEnd is how the command under a held lock set ended.
type commandEnd struct {
	err   error
	busy  bool
	doubt bool // the locks must be given up as lost, not released after a clean end
}

// command runs the exclusive-grant native cleanup, then the command, then
// the stale-only cleanup after a death by signal, and fills rec. attempt
// owns the guard spawned ahead, the resolved path and the record, and
// hands each in: six parameters, none derivable from another.
func (r *Runner) command(h *held, guard *supervise.Guard, path string, spec Spec, rec *history.Run, log hclog.Logger) commandEnd {
	pre := r.clearAll(h, spec, log, func(t Target) []string {
		if t.Mode == consullock.Exclusive {
			return t.Native.Clear // safe only under an exclusive grant
		}
		return nil
	})
	rec.NativeLocksCleared = append(rec.NativeLocksCleared, pre.cleared...)
	if pre.lost != nil {
		return commandEnd{err: &LockLostError{Cause: pre.lost}, doubt: true}
	}
	stopped := pre.stopped
	if stopped == 0 {
		stopped = r.pendingStop()
	}
	if stopped != 0 {
		return commandEnd{err: &InterruptedError{Signal: stopped, During: "before the command started"}}
	}
	lock, primary := h.primary()
	r.Summary.Vars = hookVars(spec, primary, lock)
	if r.OnStart != nil {
		r.OnStart(r.Summary.Vars)
	}
	env := append(append([]string(nil), spec.Env...), lockVars(primary, lock)...)
	out, err := r.superviseCommand(h, guard.Start, supervise.Spec{Path: path, Args: spec.Args, Env: env, Dir: spec.Dir,
		KillSignal: spec.KillSignal, KillTimeout: spec.Timing.KillTimeout}, spec.Timing, log, r.Started)
	switch {
	case errors.Is(err, supervise.ErrGuardDied):
		// The guard may have forked the command before it died: its
		// state is unknown, the locks are given up as lost (70).
		return commandEnd{err: &UnknownStateError{Err: err}, doubt: true}
	case err != nil:
		// The command never started: nothing ran, so a release is safe.
		return commandEnd{err: err}
	}
	res := r.judge(out, spec, rec, log)
	if out.res.Signal != 0 && out.lost == nil && !out.res.Unknown {
		// Leave the repository as it was found: a tool killed by a signal
		// (OOM, SIGKILL) leaves its own lock behind; only the stale-only
		// cleanup runs, and only under locks that still hold.
		post := r.clearAll(h, spec, log, func(t Target) []string { return t.Native.Stale })
		rec.NativeLocksCleared = append(rec.NativeLocksCleared, post.cleared...)
		res.doubt = res.doubt || post.lost != nil
	}
	return res
}

// lockVars are the REPOLOCK_* variables of lock t, the one place they are
// built: what the command gets once lock is granted (with its session and
// fencing token); with lock nil (never granted), they name the lock asked
// for.
func lockVars(t Target, lock *consullock.Lock) []string {
	vars := []string{"REPOLOCK_REPOSITORY=" + t.Repository, "REPOLOCK_KEY=" + t.Key, "REPOLOCK_MODE=" + string(t.Mode)}
	if lock == nil {
		return vars
	}
	return append(append([]string{"REPOLOCK_HELD=1"}, vars...),
		"REPOLOCK_SESSION="+lock.Session(), "REPOLOCK_FENCING_TOKEN="+strconv.FormatUint(lock.Token(), 10))
}

// hookVars are lockVars and, for a config job, REPOLOCK_JOB: what hooks
// get (the command does not get REPOLOCK_JOB).
func hookVars(spec Spec, t Target, lock *consullock.Lock) []string {
	vars := lockVars(t, lock)
	if spec.Job != "" {
		vars = append(vars, "REPOLOCK_JOB="+spec.Job)
	}
	return vars
}

// primary is the target of the job's own repository.
func (s Spec) primary() Target {
	for _, t := range s.Targets {
		if t.Primary {
			return t
		}
	}
	return Target{}
}

// pendingStop takes a terminating signal that arrived since the grant, so
// that the command does not start at all.
func (r *Runner) pendingStop() syscall.Signal {
	select {
	case sig := <-r.Signals:
		if s, _ := sig.(syscall.Signal); terminating(s) {
			return s
		}
	default:
	}
	return 0
}

// judge turns how the command ended into the run's error and fills rec.
func (r *Runner) judge(out loopEnd, spec Spec, rec *history.Run, log hclog.Logger) commandEnd {
	res := out.res
	if out.forwarded != 0 {
		rec.InterruptedBy = signalName(out.forwarded)
	}
	switch {
	case out.lost != nil:
		return commandEnd{err: &LockLostError{Cause: out.lost}, doubt: true}
	case res.Unknown:
		return commandEnd{err: &UnknownStateError{Err: errors.New("guard exited without a status")}, doubt: true}
	}
	class := string(Success)
	if spec.Classify != nil {
		class, _ = spec.Classify(res.ExitCode)
	}
	log.Info("command finished", "exit", res.ExitCode, "class", class, "duration", time.Since(rec.Started).Round(time.Millisecond))
	switch {
	case res.ExitCode != 0:
		// A command stopped by a forwarded signal is not healed and retried.
		busy := spec.Busy != nil && spec.Busy(res.ExitCode) && out.forwarded == 0
		return commandEnd{err: &ChildExitError{Code: res.ExitCode, Class: class, Hint: busyHint(spec, busy)}, busy: busy}
	case out.forwarded != 0:
		return commandEnd{err: &InterruptedError{Signal: out.forwarded, During: "while the command ran (it exited 0)"}}
	}
	return commandEnd{}
}

// finish releases the locks after a clean end, or gives them up on doubt;
// both destroy the sessions, and what cannot be destroyed expires by TTL.
func (r *Runner) finish(h *held, log hclog.Logger, doubt bool) {
	errs := h.release()
	for _, err := range errs {
		log.Warn("could not destroy the session; it expires by TTL", "error", err)
	}
	switch {
	case len(errs) > 0:
	case doubt:
		log.Info("session destroyed: the lock is given up as lost")
	default:
		log.Info("lock released")
	}
}

// errNotProven is the loss the kill deadline implies: the guard stops the
// command because no renewal was confirmed in time, even if Consul has not
// expired the session yet. It names how the last renewal failed, when one
// did (a TLS failure names the setting to fix).
func errNotProven(t timing.Model, h *held) error {
	err := fmt.Errorf("%w: no renewal confirmed by the kill deadline (ttl %s − kill_timeout %s − margin %s after the last one was sent)",
		consullock.ErrLost, t.TTL, t.KillTimeout, t.Margin)
	if last := h.renewErr(); last != nil {
		err = fmt.Errorf("%w; the last renewal failed: %v", err, last)
	}
	return err
}
