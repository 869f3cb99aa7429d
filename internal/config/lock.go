package config

import (
	"cmp"
	"errors"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/repolock/repolock/internal/supervise"
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
	// longer be proven. Default supervise.DefaultKillSignal (SIGTERM).
	KillSignal syscall.Signal
}

// LockSettings is one layer of lock settings: what the top-level lock
// block, a job's lock block or the flags of `repolock exec` set. A nil
// field is left to the layers below. Layers are stacked with Over, from
// the file up to the flags, and only the whole stack becomes a Lock
// (Resolve): renew_interval and margin follow ttl only where no layer set
// them, which a stack resolved layer by layer would forget.
type LockSettings struct {
	TTL, RenewInterval, Margin, KillTimeout *time.Duration
	Wait                                    *time.Duration
	OnBusy                                  *string
	KillSignal                              *syscall.Signal
}

// Over returns s with the fields it leaves unset taken from base
// (cmp.Or picks the first non-nil pointer).
func (s LockSettings) Over(base LockSettings) LockSettings {
	s.TTL = cmp.Or(s.TTL, base.TTL)
	s.RenewInterval = cmp.Or(s.RenewInterval, base.RenewInterval)
	s.Margin = cmp.Or(s.Margin, base.Margin)
	s.KillTimeout = cmp.Or(s.KillTimeout, base.KillTimeout)
	s.Wait = cmp.Or(s.Wait, base.Wait)
	s.OnBusy = cmp.Or(s.OnBusy, base.OnBusy)
	s.KillSignal = cmp.Or(s.KillSignal, base.KillSignal)
	return s
}

// Resolve is the Lock of a whole stack: what it sets, DefaultLock for the
// rest, and renew_interval and margin derived from the resolved ttl
// (timing.DefaultRenewInterval, timing.DefaultMargin) unless set. The
// result is not validated: see Lock.Validate.
func (s LockSettings) Resolve() Lock {
	l := DefaultLock()
	set(&l.TTL, s.TTL)
	l.RenewInterval = timing.DefaultRenewInterval(l.TTL)
	l.Margin = timing.DefaultMargin(l.TTL)
	set(&l.RenewInterval, s.RenewInterval)
	set(&l.Margin, s.Margin)
	set(&l.KillTimeout, s.KillTimeout)
	set(&l.Wait, s.Wait)
	set(&l.OnBusy, s.OnBusy)
	set(&l.KillSignal, s.KillSignal)
	return l
}

// setsTiming reports whether s sets any duration of the timing model.
func (s LockSettings) setsTiming() bool {
	return s.TTL != nil || s.RenewInterval != nil || s.Margin != nil || s.KillTimeout != nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Accepted values of Lock.OnBusy.
const (
	OnBusyFail = "fail"
	OnBusySkip = "skip"
)

// DefaultLock returns the settings used wherever neither the top-level lock
// block nor a job's lock block says otherwise. It satisfies Validate.
func DefaultLock() Lock {
	return Lock{Model: timing.Default(), Wait: time.Hour, OnBusy: OnBusyFail, KillSignal: supervise.DefaultKillSignal}
}

// Validate checks every field. The CLI uses it for settings that come from
// flags; configuration files get the same checks as diagnostics with
// source ranges.
func (l Lock) Validate() error {
	errs := []error{checkWait(l.Wait), checkOnBusy(l.OnBusy)}
	if _, ok := SignalName(l.KillSignal); !ok {
		errs = append(errs, fmt.Errorf("kill_signal %d is not one of %s", int(l.KillSignal), signalList()))
	}
	errs = append(errs, l.Model.Validate())
	return errors.Join(errs...)
}

// checkWait is the one check of wait, for flags and files alike.
func checkWait(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("wait (%s) must not be negative", d)
	}
	return nil
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

// SignalName returns the conventional SIG-prefixed name of a signal that
// ParseSignal accepts.
func SignalName(sig syscall.Signal) (string, bool) {
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
