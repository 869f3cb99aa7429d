package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/repolock/repolock/internal/timing"
)

// Lock holds the timing and behaviour of one job's cluster lock. The
// durations are the timing model of package timing (its one place, with
// their defaults and relations); DefaultLock is the one place the other
// defaults live.
type Lock struct {
	// Model is ttl, renew_interval, margin and kill_timeout. Defaults: 30s,
	// ttl/3, ttl/10, 10s; renew_interval and margin are recomputed from
	// each job's own ttl unless set explicitly.
	timing.Model

	// Wait is how long to wait for the lock when the repository is busy
	// before giving up (exit 75, or 0 with OnBusy "skip"). Zero means do
	// not wait at all. Default 1h, so a nightly backup queues behind a
	// prune of the same repository instead of failing.
	Wait time.Duration

	// OnBusy says what giving up after Wait means: "fail" (exit 75) or
	// "skip" (exit 0, for periodic jobs where the next run will catch up).
	// Default "fail".
	OnBusy string

	// KillSignal is sent to the command's process group when the lock can no
	// longer be proven. Default SIGTERM.
	KillSignal syscall.Signal
}

// Accepted values of Lock.OnBusy.
const (
	OnBusyFail = "fail"
	OnBusySkip = "skip"
)

// DefaultLock returns the settings used wherever neither the top-level lock
// block nor a job's lock block says otherwise. It satisfies Validate.
func DefaultLock() Lock {
	return Lock{Model: timing.Default(), Wait: time.Hour, OnBusy: OnBusyFail, KillSignal: syscall.SIGTERM}
}

// Validate checks every field. The CLI uses it for settings that come from
// flags; configuration files get the same checks as diagnostics with
// source ranges.
func (l Lock) Validate() error {
	var errs []error
	if l.Wait < 0 {
		errs = append(errs, fmt.Errorf("wait (%s) must not be negative", l.Wait))
	}
	if err := checkOnBusy(l.OnBusy); err != nil {
		errs = append(errs, err)
	}
	if _, ok := signalName(l.KillSignal); !ok {
		errs = append(errs, fmt.Errorf("kill_signal %d is not one of %s", int(l.KillSignal), signalList()))
	}
	errs = append(errs, l.Model.Validate())
	return errors.Join(errs...)
}

func checkOnBusy(s string) error {
	if s != OnBusyFail && s != OnBusySkip {
		return fmt.Errorf("on_busy %q must be %q or %q", s, OnBusyFail, OnBusySkip)
	}
	return nil
}

// signals are the names kill_signal accepts: the ones that end or interrupt
// a process. Stop and continue signals are left out on purpose, since a
// stopped command still holds the repository.
var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT,
	"ALRM": syscall.SIGALRM,
	"HUP":  syscall.SIGHUP,
	"INT":  syscall.SIGINT,
	"KILL": syscall.SIGKILL,
	"QUIT": syscall.SIGQUIT,
	"TERM": syscall.SIGTERM,
	"USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

// ParseSignal parses a signal name such as "TERM", "SIGTERM" or "sigint"
// (case-insensitive, SIG prefix optional).
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	n = strings.TrimPrefix(n, "SIG")
	if sig, ok := signals[n]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q: use one of %s", name, signalList())
}

// signalName returns the conventional SIG-prefixed name of a signal that
// ParseSignal accepts.
func signalName(sig syscall.Signal) (string, bool) {
	for name, s := range signals {
		if s == sig {
			return "SIG" + name, true
		}
	}
	return "", false
}

func signalList() string {
	names := make([]string, 0, len(signals))
	for name := range signals {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
