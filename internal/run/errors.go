package run

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/repolock/repolock/internal/exitcode"
)

// ChildExitError is a command that ran to its end with a non-zero status;
// Code is its exit code, or 128+N when signal N killed it.
type ChildExitError struct {
	Code  int
	Class string
	Hint  string // what the operator can do about it, or ""
}

func (e *ChildExitError) Error() string {
	msg := fmt.Sprintf("command exited with code %d", e.Code)
	if e.Class != "" {
		msg = fmt.Sprintf("command exited with code %d (%s)", e.Code, e.Class)
	}
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// ExitCode is the command's own code.
func (e *ChildExitError) ExitCode() int { return e.Code }

// LockLostError means the lock was lost while the command ran; the command
// was stopped and the session destroyed.
type LockLostError struct {
	Cause error
}

func (e *LockLostError) Error() string {
	return fmt.Sprintf("lock lost while the command ran; command stopped: %v", e.Cause)
}
func (e *LockLostError) Unwrap() error { return e.Cause }

// ExitCode is exitcode.LockLost.
func (e *LockLostError) ExitCode() int { return exitcode.LockLost }

// InterruptedError means a signal ended the wait for the lock, or the
// command exited 0 after repolock forwarded a terminating signal to it: the
// run did not finish, so it must not count as a success.
type InterruptedError struct {
	Signal syscall.Signal
	During string
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("interrupted by %s %s", signalName(e.Signal), e.During)
}

// ExitCode is the shell convention for a death by signal: never 0.
func (e *InterruptedError) ExitCode() int { return exitcode.Signal(e.Signal) }

// UnknownStateError means the guard process died without reporting: the
// command's state is not known, so the run is not reported as the command's
// status and the session is invalidated.
type UnknownStateError struct{ Err error }

// ExitCode is exitcode.Unknown.
func (e *UnknownStateError) ExitCode() int { return exitcode.Unknown }

func (e *UnknownStateError) Error() string {
	return fmt.Sprintf("command state unknown (guard process failed): %v", e.Err)
}

// signalName is the conventional name (SIGTERM) for logs and errors.
func signalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}
