// Package timing is repolock's one timing model (README "Guarantees", 2):
// the lease a Consul session gives, the kill schedule it implies for the
// command, their defaults and the relation between them. Config files,
// flags and the lock all take their durations from here and are checked
// here, once.
//
// Let t_sent be the local CLOCK_BOOTTIME time at which the last renewal
// that Consul confirmed was sent. Consul cannot expire the session before
// t_sent + TTL. repolock sends the kill signal to the command's group at
// t_sent + TTL − KillTimeout − Margin (soft), SIGKILL at t_sent + TTL −
// Margin (hard) and counts the lock as lost from then on. For one late
// renewal not to kill the command, RenewInterval + KillTimeout + Margin <
// TTL.
package timing

import (
	"errors"
	"fmt"
	"time"

	"github.com/repolock/repolock/internal/clock"
)

// Bounds of TTL. Consul rejects session TTLs outside [session_ttl_min, 24h];
// session_ttl_min is 10s by default but configurable (tests lower it to 1s),
// so only its floor is enforced here.
const (
	MinTTL = time.Second
	MaxTTL = 24 * time.Hour
)

// Defaults of the durations a user does not set.
const (
	DefaultTTL         = 30 * time.Second
	DefaultKillTimeout = 10 * time.Second
)

// DefaultRenewInterval is the renewal interval for a TTL when none is
// configured: three renewal attempts per TTL, as Consul's own lock helpers do.
func DefaultRenewInterval(ttl time.Duration) time.Duration { return ttl / 3 }

// DefaultMargin is the safety margin for a TTL when none is configured.
func DefaultMargin(ttl time.Duration) time.Duration { return ttl / 10 }

// Lease is what a Consul session lock needs to know: how long a confirmed
// renewal keeps it, how often to renew, and the margin kept before the
// earliest moment the server may expire it.
type Lease struct {
	// TTL of the Consul session. Default 30s.
	TTL time.Duration
	// RenewInterval between renewals. Default TTL/3.
	RenewInterval time.Duration
	// Margin absorbs scheduling delay and clock-rate differences between
	// this host and the servers. Default TTL/10.
	Margin time.Duration
}

// LeaseFor is the lease of a TTL with the default renew interval and margin.
func LeaseFor(ttl time.Duration) Lease {
	return Lease{TTL: ttl, RenewInterval: DefaultRenewInterval(ttl), Margin: DefaultMargin(ttl)}
}

// Expiry is the moment, given the send time of the last confirmed renewal,
// from which the lock counts as lost: the server may expire the session
// Margin later.
func (l Lease) Expiry(sent clock.Boottime) clock.Boottime { return sent.Add(l.TTL - l.Margin) }

// EpochWait is how long a contender that finds the lock store without its
// epoch key (new, wiped, restored) waits before its grant counts. A holder
// the store forgot sent its last confirmed renewal before the loss, and
// SIGKILLs its command at that send + TTL − Margin (Expiry) at the latest:
// a TTL from when the loss is seen is later than that. This holds for
// holders whose TTL is at most this contender's: the contenders of one
// prefix should share a TTL.
func (l Lease) EpochWait() time.Duration { return l.TTL }

// Validate checks each field and that a renewal fits before the expiry.
func (l Lease) Validate() error {
	errs := []error{CheckTTL(l.TTL), CheckRenewInterval(l.RenewInterval), CheckMargin(l.Margin)}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if l.RenewInterval+l.Margin >= l.TTL {
		return fmt.Errorf("renew_interval (%s) + margin (%s) must be less than ttl (%s)", l.RenewInterval, l.Margin, l.TTL)
	}
	return nil
}

// Model is a lease and the kill schedule of the command held under it.
type Model struct {
	Lease
	// KillTimeout is how long the command may take to exit after the kill
	// signal before it is sent SIGKILL. Default 10s.
	KillTimeout time.Duration
}

// Default is the model used wherever nothing is configured.
func Default() Model { return Model{Lease: LeaseFor(DefaultTTL), KillTimeout: DefaultKillTimeout} }

// Deadlines returns when the command's group gets the kill signal (soft)
// and SIGKILL (hard), given the send time of the last confirmed renewal.
// hard is the lease's Expiry.
func (m Model) Deadlines(sent clock.Boottime) (soft, hard clock.Boottime) {
	hard = m.Expiry(sent)
	return hard.Add(-m.KillTimeout), hard
}

// Validate checks every field's range and the relation
// RenewInterval + KillTimeout + Margin < TTL.
func (m Model) Validate() error {
	errs := []error{CheckTTL(m.TTL), CheckRenewInterval(m.RenewInterval), CheckKillTimeout(m.KillTimeout), CheckMargin(m.Margin)}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return m.CheckRelation()
}

// CheckRelation checks RenewInterval + KillTimeout + Margin < TTL, assuming
// each field is in its own range (so TTL ≤ 24h and the sum cannot overflow
// once each term is below TTL). The error explains the relation.
func (m Model) CheckRelation() error {
	if m.RenewInterval < m.TTL && m.KillTimeout < m.TTL && m.Margin < m.TTL &&
		m.RenewInterval+m.KillTimeout+m.Margin < m.TTL {
		return nil
	}
	return fmt.Errorf("renew_interval (%s) + kill_timeout (%s) + margin (%s) must be less than ttl (%s): "+
		"Consul may expire the session ttl after the last renewal it confirmed, and before that repolock must "+
		"try one more renewal (renew_interval), then stop the command with kill_signal, allow kill_timeout, "+
		"send SIGKILL and keep margin in reserve; raise ttl or lower the other three",
		m.RenewInterval, m.KillTimeout, m.Margin, m.TTL)
}

// CheckTTL checks a TTL against the session TTLs Consul accepts.
func CheckTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return fmt.Errorf("ttl (%s) must be between %s and %s, the session TTLs Consul accepts", ttl, MinTTL, MaxTTL)
	}
	return nil
}

// MinRenewInterval is the least renew interval: it also bounds each
// request to Consul, which a shorter one would time out before any answer.
const MinRenewInterval = 100 * time.Millisecond

// MinMargin is the least margin: below it, scheduling delay alone eats it.
const MinMargin = 10 * time.Millisecond

// CheckRenewInterval checks that renewals happen, and that each request
// they bound has time to be answered.
func CheckRenewInterval(d time.Duration) error {
	if d < MinRenewInterval {
		return fmt.Errorf("renew_interval (%s) must be at least %s: it also bounds every request to Consul", d, MinRenewInterval)
	}
	return nil
}

// CheckKillTimeout checks a kill timeout (zero: SIGKILL right after the signal).
func CheckKillTimeout(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("kill_timeout (%s) must not be negative", d)
	}
	return nil
}

// CheckMargin checks the margin: the model needs some slack for scheduling
// delay and clock-rate differences.
func CheckMargin(d time.Duration) error {
	if d < MinMargin {
		return fmt.Errorf("margin (%s) must be at least %s: the timing model needs slack for scheduling delay and clock-rate differences", d, MinMargin)
	}
	return nil
}

// FitKillTimeout is the kill timeout to use under a supervisor (Nomad) that
// SIGKILLs repolock supervisorTimeout after its stop signal: the command
// must be gone, the lock released and the run recorded before then. It
// keeps killTimeout when that fits, and otherwise leaves a quarter of the
// supervisor's timeout, at least 1s and at most half of it, for the release.
func FitKillTimeout(killTimeout, supervisorTimeout time.Duration) (time.Duration, bool) {
	allowance := min(max(time.Second, supervisorTimeout/4), supervisorTimeout/2)
	if fit := supervisorTimeout - allowance; killTimeout > fit {
		return fit, true
	}
	return killTimeout, false
}
