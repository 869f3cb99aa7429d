package run

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/exitcode"
	"github.com/repolock/repolock/internal/hooks"
	"github.com/repolock/repolock/internal/metrics"
	"github.com/repolock/repolock/internal/supervise"
)

// Kind is what a run, or a repolock command, came to.
type Kind string

// Kinds of outcome. Each has one exit code, metrics outcome and hook event
// (Outcome's methods); Of decides which an error is.
const (
	Success     Kind = "success"     // the command ran to its end with 0 under locks that held
	Failure     Kind = "failure"     // the command ran and failed, or could not be started (126/127)
	Busy        Kind = "busy"        // not granted within wait (75)
	Skipped     Kind = "skipped"     // busy, with on_busy = "skip" (0)
	Lost        Kind = "lost"        // the lock was lost; the command was stopped (76)
	Interrupted Kind = "interrupted" // a stop signal ended the run (128+N)
	Usage       Kind = "usage"       // bad command line (64)
	Config      Kind = "config"      // configuration invalid (78)
	Unknown     Kind = "unknown"     // the guard died: the command's state is unknown (70)
	Unreachable Kind = "unreachable" // Consul unreachable (69)
	Denied      Kind = "denied"      // Consul's ACLs refused (77)
	Stale       Kind = "stale"       // status: a job without a success within expect_every (1)
	Internal    Kind = "internal"    // an error no rule here classifies (71)
)

// Outcome is how a run ended, decided once by Of: the exit code, the
// metrics outcome, the hook event, the error line and the last record's
// class and exit all read it.
type Outcome struct {
	Kind Kind
	Code int   // repolock's exit code
	Err  error // nil for success and skipped
	// Class names the outcome in the last record and logs: the tool's
	// name of the command's exit code when the command ran to its end,
	// else the kind.
	Class string
}

// Of is the one place an error becomes an outcome.
func Of(err error) Outcome {
	o := Outcome{Err: err}
	var (
		child   *ChildExitError
		lost    *LockLostError
		intr    *InterruptedError
		unknown *UnknownStateError
		stale   *StaleError
		execErr *supervise.ExecError
		unreach *consullock.UnreachableError
		denied  *consullock.PermissionError
		status  api.StatusError
	)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		o.Kind, o.Code, o.Err = Success, exitcode.OK, nil
	case errors.Is(err, ErrSkipped):
		o.Kind, o.Code = Skipped, exitcode.OK
	case errors.As(err, &child):
		o.Kind, o.Code, o.Class = Failure, child.Code, child.Class
	case errors.As(err, &lost):
		o.Kind, o.Code, o.Class = Lost, exitcode.LockLost, "lock lost"
	case errors.As(err, &intr):
		o.Kind, o.Code = Interrupted, exitcode.Signal(intr.Signal)
	case errors.As(err, &unknown):
		o.Kind, o.Code = Unknown, exitcode.Unknown
	case errors.As(err, &execErr):
		o.Kind, o.Code = Failure, execErr.Code
	case errors.As(err, new(*UsageError)):
		o.Kind, o.Code = Usage, exitcode.Usage
	case errors.As(err, new(*ConfigError)), errors.As(err, new(*consullock.DatacenterError)):
		o.Kind, o.Code = Config, exitcode.Config
	case errors.As(err, &stale):
		o.Kind, o.Code = Stale, exitcode.Stale
	// Before ErrLost: a waiter whose session lapsed because Consul was
	// unreachable carries that loss inside its UnreachableError.
	case errors.As(err, &denied):
		o.Kind, o.Code = Denied, exitcode.Denied
	// Consul answered in a way waiting cannot change: as unusable as a
	// Consul that does not answer, but final at once.
	case errors.As(err, &unreach), errors.As(err, new(*consullock.RefusedError)):
		o.Kind, o.Code = Unreachable, exitcode.Unreachable
	// ErrLost outside a LockLostError: the session ended while still
	// waiting (an operator break), so the lock was not acquired.
	case errors.Is(err, consullock.ErrTimeout), errors.Is(err, consullock.ErrLost):
		o.Kind, o.Code = Busy, exitcode.Busy
	case errors.As(err, &status):
		o.Kind, o.Code = Unreachable, exitcode.Unreachable
	default:
		o.Kind, o.Code = Internal, exitcode.Internal
	}
	if o.Class == "" {
		o.Class = string(o.Kind)
	}
	return o
}

// Interrupted refines a failure after a stop request was forwarded to the
// command (by signal name, as Summary.InterruptedBy): the command's own
// code stands, but the run counts as interrupted, not as a failed backup.
func (o Outcome) Interrupted(by string) Outcome {
	if o.Kind == Failure && by != "" {
		o.Kind = Interrupted
	}
	return o
}

// readers is what the metrics and the hooks call each kind that is not a
// plain failure to both: hooks have events for success, busy and lost
// only.
var readers = map[Kind]struct{ metric, event string }{
	Success:     {metrics.Success, hooks.Success},
	Busy:        {metrics.Busy, hooks.Busy},
	Skipped:     {metrics.Busy, hooks.Busy},
	Lost:        {metrics.Lost, hooks.Lost},
	Interrupted: {metrics.Interrupted, hooks.Failure},
	Usage:       {metrics.Config, hooks.Failure},
	Config:      {metrics.Config, hooks.Failure},
}

// Metric is the value of repolock_runs_total's outcome label.
func (o Outcome) Metric() string {
	if r, ok := readers[o.Kind]; ok {
		return r.metric
	}
	return metrics.Failure
}

// Event is the hook event the outcome runs.
func (o Outcome) Event() string {
	if r, ok := readers[o.Kind]; ok {
		return r.event
	}
	return hooks.Failure
}

// Line is the error on one line, "" for a success.
func (o Outcome) Line() string {
	if o.Err == nil {
		return ""
	}
	return strings.Join(strings.Fields(o.Err.Error()), " ")
}

// String is the kind and the code, for logs and tests.
func (o Outcome) String() string { return fmt.Sprintf("%s (exit %d)", o.Kind, o.Code) }
