package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Lock holds the timing and behaviour of one job's cluster lock. Every field
// is documented with its default; DefaultLock is the one place those defaults
// live, and Validate is the one place their relations are checked.
//
// The timing model: let t_sent be the local time at which the last renewal
// that Consul confirmed was sent. Consul cannot expire the session before
// t_sent + TTL. repolock sends KillSignal to the command's process group no
// later than t_sent + TTL - KillTimeout - Margin and SIGKILL at
// t_sent + TTL - Margin. For that schedule to leave room for at least one
// more renewal attempt, RenewInterval + KillTimeout + Margin < TTL.
type Lock struct {
	// TTL is the Consul session TTL: how long after the last confirmed
	// renewal Consul may invalidate the session and grant the lock to
	// another contender. Default 30s. Consul accepts 10s..24h by default
	// (the lower bound is the server's session_ttl_min, which tests lower
	// to 1s), so config validation accepts 1s..24h.
	TTL time.Duration

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

	// KillTimeout is how long the command may take to exit after KillSignal
	// before it is sent SIGKILL. Default 10s.
	KillTimeout time.Duration

	// RenewInterval is the time between session renewals. Default TTL/3,
	// recomputed from each job's own TTL unless set explicitly.
	RenewInterval time.Duration

	// Margin is the safety margin between SIGKILL and the earliest moment
	// Consul may expire the session; it absorbs scheduling delay and clock
	// rate differences. Default TTL/10, recomputed like RenewInterval.
	Margin time.Duration
}

// Accepted values of Lock.OnBusy.
const (
	OnBusyFail = "fail"
	OnBusySkip = "skip"
)

// Bounds of Lock.TTL. Consul rejects session TTLs outside
// [session_ttl_min, 24h]; session_ttl_min is 10s by default but configurable,
// so only its floor is enforced here.
const (
	MinTTL = time.Second
	MaxTTL = 24 * time.Hour
)

// DefaultLock returns the settings used wherever neither the top-level lock
// block nor a job's lock block says otherwise. It satisfies Validate.
func DefaultLock() Lock {
	const ttl = 30 * time.Second
	return Lock{
		TTL:           ttl,
		Wait:          time.Hour,
		OnBusy:        OnBusyFail,
		KillSignal:    syscall.SIGTERM,
		KillTimeout:   10 * time.Second,
		RenewInterval: DefaultRenewInterval(ttl),
		Margin:        DefaultMargin(ttl),
	}
}

// DefaultRenewInterval is the renewal interval used for a TTL when none is
// configured: three renewal attempts per TTL, as Consul's own lock helpers do.
func DefaultRenewInterval(ttl time.Duration) time.Duration { return ttl / 3 }

// DefaultMargin is the safety margin used for a TTL when none is configured.
func DefaultMargin(ttl time.Duration) time.Duration { return ttl / 10 }

// Validate checks every field's range and the timing relation
// RenewInterval + KillTimeout + Margin < TTL. The CLI uses it for settings
// that come from flags; configuration files get the same checks as
// diagnostics with source ranges.
func (l Lock) Validate() error {
	var errs []error
	if err := checkTTL(l.TTL); err != nil {
		errs = append(errs, err)
	}
	if l.Wait < 0 {
		errs = append(errs, fmt.Errorf("wait (%s) must not be negative", l.Wait))
	}
	if l.KillTimeout < 0 {
		errs = append(errs, fmt.Errorf("kill_timeout (%s) must not be negative", l.KillTimeout))
	}
	if l.RenewInterval <= 0 {
		errs = append(errs, fmt.Errorf("renew_interval (%s) must be positive", l.RenewInterval))
	}
	if l.Margin <= 0 {
		// The timing model needs some slack for scheduling delay and
		// clock-rate differences between this host and the servers.
		errs = append(errs, fmt.Errorf("margin (%s) must be positive", l.Margin))
	}
	if err := checkOnBusy(l.OnBusy); err != nil {
		errs = append(errs, err)
	}
	if _, ok := signalName(l.KillSignal); !ok {
		errs = append(errs, fmt.Errorf("kill_signal %d is not one of %s", int(l.KillSignal), signalList()))
	}
	// The relation is only meaningful (and overflow-free) once the
	// individual fields are in range.
	if len(errs) == 0 {
		if err := checkTiming(l); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func checkTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return fmt.Errorf("ttl (%s) must be between %s and %s, the session TTLs Consul accepts", ttl, MinTTL, MaxTTL)
	}
	return nil
}

func checkOnBusy(s string) error {
	if s != OnBusyFail && s != OnBusySkip {
		return fmt.Errorf("on_busy %q must be %q or %q", s, OnBusyFail, OnBusySkip)
	}
	return nil
}

// checkTiming assumes each field is within its own bounds, so TTL <= 24h and
// the sum below cannot overflow once each term is known to be below TTL.
func checkTiming(l Lock) error {
	if l.RenewInterval < l.TTL && l.KillTimeout < l.TTL && l.Margin < l.TTL &&
		l.RenewInterval+l.KillTimeout+l.Margin < l.TTL {
		return nil
	}
	return fmt.Errorf("renew_interval (%s) + kill_timeout (%s) + margin (%s) must be less than ttl (%s): "+
		"Consul may expire the session ttl after the last renewal it confirmed, and before that repolock must "+
		"try one more renewal (renew_interval), then stop the command with kill_signal, allow kill_timeout, "+
		"send SIGKILL and keep margin in reserve; raise ttl or lower the other three",
		l.RenewInterval, l.KillTimeout, l.Margin, l.TTL)
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
