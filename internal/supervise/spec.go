package supervise

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/repolock/repolock/internal/exitcode"
)

// DefaultKillSignal is applied by Start to a zero Spec.KillSignal, and is
// the default of the kill_signal setting (config.DefaultLock).
const DefaultKillSignal = syscall.SIGTERM

// Spec describes the command to run.
type Spec struct {
	// Path is the program; Start resolves it with Resolve, so a bare name is
	// looked up in repolock's own $PATH and a relative path is taken relative
	// to repolock's working directory (not Dir).
	Path string
	// Args are the arguments including Args[0], the program name as given;
	// empty means []string{Path}.
	Args []string
	// Env is the command's entire environment. Unlike os/exec, nil means an
	// empty environment: repolock's own variables (CONSUL_HTTP_TOKEN, …)
	// reach the command only when the caller copies them in on purpose.
	Env []string
	// Dir is the working directory; empty means repolock's.
	Dir string
	// Stdout, when set, receives the command's standard output instead of
	// repolock's (stdin and stderr stay inherited), so that the output of
	// a short helper command (a tool listing its own locks) can be read.
	// Only Start honours it: it becomes the fd 1 of the guard spawned for
	// the command, which hands its 0, 1 and 2 on. It never travels in the
	// control protocol. The caller keeps its own copy and closes it; with a
	// pipe, close the write end after Start and drain the read end while
	// the command runs (a full pipe blocks the command under the lock): end
	// of file comes once the guard and every process holding it are gone.
	Stdout *os.File
	// KillSignal asks the group to stop (default SIGTERM).
	KillSignal syscall.Signal
	// KillTimeout is the grace between KillSignal and SIGKILL; zero means
	// SIGKILL right after KillSignal (repolock's default is
	// timing.DefaultKillTimeout).
	KillTimeout time.Duration
	// Soft and Hard are the initial deadline, as for Process.SetDeadline
	// (0 = none). The guard arms it before it forks the command and refuses
	// to fork once it has passed: Start then fails with ErrDeadlinePassed.
	Soft, Hard Boottime
}

// Result is how the command ended.
type Result struct {
	// ExitCode is the command's exit code, 128+N when signal N killed it,
	// and -1 when Unknown.
	ExitCode int
	// Signal is the signal that killed the command, or 0.
	Signal syscall.Signal
	// Unknown is true when the guard died before reporting the command's
	// status; the group was then killed and awaited by repolock itself.
	Unknown bool
}

// ExecError says the command could not be executed; Code is the exit code a
// shell would give (126 not executable, 127 not found).
type ExecError struct {
	Code int
	Cmd  string
	Err  error
}

// Error returns a one-line message naming the command.
func (e *ExecError) Error() string {
	return fmt.Sprintf("supervise: cannot run %q: %v", e.Cmd, e.Err)
}

// Unwrap returns the cause, usually a syscall.Errno.
func (e *ExecError) Unwrap() error { return e.Err }

// ErrDone is returned when a Process is asked to do something after Done.
var ErrDone = errors.New("supervise: process is done")

// ErrDeadlinePassed is wrapped by the error of Start and Guard.Start when
// Spec.Soft (or Spec.Hard) had passed by the time the guard was about to
// fork: the command was not started.
var ErrDeadlinePassed = errors.New("supervise: the kill deadline passed before the command started")

// ErrGuardDied is returned by Start when the guard ended after it was sent
// the command but before it said whether it started it: the command may
// have been forked, so its state is unknown.
var ErrGuardDied = errors.New("supervise: the guard died before reporting whether the command started")

// checkDeadline validates a soft/hard pair as SetDeadline and Spec take it.
func checkDeadline(soft, hard Boottime) error {
	if soft < 0 || hard < 0 || (hard != 0 && soft > hard) {
		return fmt.Errorf("supervise: invalid deadline soft=%d hard=%d", soft, hard)
	}
	return nil
}

// Exit codes shells use for a command they cannot run.
const (
	codeNotExecutable = exitcode.NotExecutable
	codeNotFound      = exitcode.NotFound
)

// resultOf turns a wait status into the exit code a shell would report.
func resultOf(ws syscall.WaitStatus) Result {
	if ws.Signaled() {
		return Result{ExitCode: exitcode.Signal(ws.Signal()), Signal: ws.Signal()}
	}
	return Result{ExitCode: ws.ExitStatus()}
}
