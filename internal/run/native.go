package run

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/exitcode"
	"github.com/repolock/repolock/internal/supervise"
	"github.com/repolock/repolock/plugin"
)

// Native is what repolock may do about a backup tool's own locks in one
// repository, as the plugin and the repository's unlock_native say.
type Native struct {
	Tool string
	// Program runs the tool's own commands: the job's program when the job
	// runs the tool by a path (a pinned binary), else the tool's name.
	Program string
	Policy  string // the repository's unlock_native
	// Env is the whole environment for the tool's own commands on this
	// repository (plan.Environment of the repository).
	Env []string
	// Clear removes native locks as Policy allows; nil for "never". It
	// runs only under an exclusive grant of the repository's lock.
	Clear []string
	// Stale removes only locks the tool itself considers stale; nil when
	// Policy is "never" or the tool has no such command.
	Stale []string
	// Lister lists the tool's locks, so repolock can say which it removed;
	// nil when the tool cannot.
	Lister plugin.LockLister
	// Fix tells the operator what clears a "native lock busy" exit.
	Fix string
}

// healable reports whether any target's policy lets repolock clear
// native locks.
func healable(spec Spec) bool {
	return slices.ContainsFunc(spec.Targets, func(t Target) bool { return t.Native != nil && t.Native.Clear != nil })
}

// busyHint is the fix named by the error line of a "native lock busy" exit.
func busyHint(spec Spec, busy bool) string {
	for _, t := range spec.Targets {
		if busy && t.Primary && t.Native != nil {
			return t.Native.Fix
		}
	}
	return ""
}

// heal is what a "native lock busy" exit leads to: queue for every
// healable repository exclusively (the grant proves that no other
// repolock anywhere holds it, so no native lock can belong to a live
// writer that goes through repolock), clear native locks per policy, and
// release. retry is false when the tool's listing shows nothing was
// removed: running the command again could only fail the same way.
func (r *Runner) heal(ctx context.Context, spec Spec) (cleared []plugin.NativeLock, retry bool, err error) {
	var targets []Target
	for _, t := range spec.Targets {
		if t.Native != nil && t.Native.Clear != nil {
			t.Mode = consullock.Exclusive
			targets = append(targets, t)
		}
	}
	r.Log.Warn("native lock busy; queueing exclusively to clear native locks", "repositories", len(targets))
	h, err := r.acquire(ctx, spec, targets)
	if err != nil {
		return nil, false, fmt.Errorf("exclusive lock for healing: %w", err)
	}
	lock, _ := h.primary()
	log := r.Log.With("key", targets[0].Key, "session", lock.Session(), "fencing_token", lock.Token())
	res := r.clearAll(h, spec, log, func(t Target) []string { return t.Native.Clear })
	r.finish(h, log, res.lost != nil)
	switch {
	case res.lost != nil:
		return nil, false, &LockLostError{Cause: res.lost}
	case res.stopped != 0:
		return nil, false, &InterruptedError{Signal: res.stopped, During: "while clearing native locks"}
	}
	if len(res.cleared) == 0 && !res.unlisted {
		log.Error("no native lock was removed; not running the command again")
		return nil, false, nil
	}
	return res.cleared, true, nil
}

// clearing is what clearing native locks did.
type clearing struct {
	cleared  []plugin.NativeLock
	unlisted bool           // a tool without a lister ran its unlock: what it removed is unknown
	lost     error          // the lock was lost meanwhile: nothing more runs
	stopped  syscall.Signal // a terminating signal arrived: nothing more runs
}

// clearAll runs, for each target, the native-lock command pick returns
// (nil: none) under the held locks.
func (r *Runner) clearAll(h *held, spec Spec, log hclog.Logger, pick func(Target) []string) clearing {
	var res clearing
	for _, t := range h.targets {
		if t.Native == nil {
			continue
		}
		argv := pick(t)
		if argv == nil {
			continue
		}
		removed, listed, out := r.clearNative(h, spec, t, argv, log)
		res.cleared = append(res.cleared, removed...)
		res.unlisted = res.unlisted || !listed
		if out.lost != nil {
			res.lost = out.lost
			return res
		}
		if terminating(out.forwarded) {
			res.stopped = out.forwarded
			return res
		}
	}
	return res
}

// clearNative runs argv on t's repository, between two listings of the
// tool's locks when it can list them, and reports what disappeared.
func (r *Runner) clearNative(h *held, spec Spec, t Target, argv []string, log hclog.Logger) ([]plugin.NativeLock, bool, loopEnd) {
	n := t.Native
	var before []plugin.NativeLock
	listed := n.Lister != nil
	if listed {
		var out loopEnd
		if before, out = r.listNative(h, spec, n, log); out.lost != nil || out.forwarded != 0 {
			return nil, true, out
		}
		// A listing that failed says nothing: clear anyway, unlisted.
		listed = out.res.ExitCode == 0 && !out.res.Unknown
		if !listed {
			log.Info("the tool's locks could not be listed; clearing them unlisted", "repository", t.Repository, "exit", out.res.ExitCode)
		}
		if listed && len(before) == 0 {
			return nil, true, loopEnd{} // nothing to clear: the tool is not run
		}
	}
	log.Info("clearing native locks under the cluster lock", "repository", t.Repository, "policy", n.Policy, "command", argv)
	_, out := r.aux(h, spec, n, argv, false, log)
	if out.lost != nil || out.forwarded != 0 || !listed {
		return nil, listed, out
	}
	after, out := r.listNative(h, spec, n, log)
	var removed []plugin.NativeLock
	for _, l := range before {
		if !slices.ContainsFunc(after, func(a plugin.NativeLock) bool { return a.ID == l.ID }) {
			removed = append(removed, l)
			log.Warn("removed native lock", "repository", t.Repository, "tool", n.Tool, "lock", l.String())
		}
	}
	for _, l := range after {
		log.Warn("native lock left in place", "repository", t.Repository, "tool", n.Tool, "lock", l.String())
	}
	return removed, true, out
}

// listNative reads the tool's locks with its own commands.
// The outcome is the listing's: a failed listing has a non-zero exit.
func (r *Runner) listNative(h *held, spec Spec, n *Native, log hclog.Logger) ([]plugin.NativeLock, loopEnd) {
	ids, out := r.aux(h, spec, n, n.Lister.ListLocks(), true, log)
	if out.res.ExitCode != 0 || out.lost != nil || out.forwarded != 0 {
		return nil, out
	}
	var locks []plugin.NativeLock
	for _, id := range strings.Fields(string(ids)) {
		show, sout := r.aux(h, spec, n, n.Lister.ShowLock(id), true, log)
		if sout.lost != nil || sout.forwarded != 0 {
			return locks, sout
		}
		l, err := n.Lister.ParseLock(id, show)
		if err != nil {
			l = plugin.NativeLock{ID: id} // gone meanwhile, or unreadable: still listed
		}
		locks = append(locks, l)
	}
	return locks, out
}

// aux runs one of the tool's own commands under the held locks, supervised
// like the main command (deadlines, forwarded signals, no orphans), and
// returns its standard output when capture is set. A failure is logged:
// the main command reports the tool's own error if it matters. Six
// parameters: the run (h, spec), the tool's command (n, argv), and what to
// do with its output and errors (capture, log).
func (r *Runner) aux(h *held, spec Spec, n *Native, argv []string, capture bool, log hclog.Logger) ([]byte, loopEnd) {
	// The job's own build of the tool runs the tool's commands; a lister
	// that reads the repository with sh (borg) is left as it is.
	if n.Program != "" && argv[0] == n.Tool {
		argv = append([]string{n.Program}, argv[1:]...)
	}
	path, err := supervise.Resolve(argv[0])
	if err != nil {
		log.Warn("native lock command not run", "command", argv, "error", err)
		return nil, loopEnd{res: supervise.Result{ExitCode: exitcode.NotFound}}
	}
	ps := supervise.Spec{Path: path, Args: argv, Env: n.Env, Dir: spec.Dir,
		KillSignal: spec.KillSignal, KillTimeout: spec.Timing.KillTimeout}
	var f *os.File
	if capture {
		if f, err = os.CreateTemp("", "repolock-native-"); err != nil {
			log.Warn("native lock command not run", "command", argv, "error", err)
			return nil, loopEnd{}
		}
		defer os.Remove(f.Name())
		defer f.Close()
		ps.Stdout = f
	}
	out, err := r.superviseCommand(h, supervise.Start, ps, spec.Timing, log, nil)
	switch {
	case err != nil:
		log.Warn("native lock command failed to start", "command", argv, "error", err)
	case out.lost != nil:
		log.Warn("lock lost during a native lock command", "command", argv, "reason", out.lost)
	case out.res.ExitCode != 0 && !capture:
		// A listing (capture) that fails is the caller's to judge: the
		// borg lister fails on purpose where it cannot list.
		log.Warn("native lock command failed", "command", argv, "exit", out.res.ExitCode)
	}
	if f == nil {
		return nil, out
	}
	b, _ := os.ReadFile(f.Name())
	return b, out
}
