package run

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
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

// LockLostError means the lock was lost while the command ran; the command
// was stopped and the session destroyed.
type LockLostError struct {
	Cause error
}

func (e *LockLostError) Error() string {
	return fmt.Sprintf("lock lost while the command ran; command stopped: %v", e.Cause)
}
func (e *LockLostError) Unwrap() error { return e.Cause }

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

// UnknownStateError means the guard process died without reporting: the
// command's state is not known, so the run is not reported as the command's
// status and the session is invalidated.
type UnknownStateError struct{ Err error }

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

// UsageError is bad command-line usage; Msg says what and how to fix it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ConfigError is a configuration that cannot be used: its diagnostics
// were printed, Msg sums them up.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// StaleError is a status that found N jobs without a success within their
// expect_every (for health checks).
type StaleError struct{ N int }

func (e *StaleError) Error() string {
	return fmt.Sprintf("%d job(s) without a success within their expect_every", e.N)
}
