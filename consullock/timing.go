package consullock

import (
	"fmt"
	"time"

	"github.com/repolock/repolock/internal/clock"
)

// Timing is the timing model of one lock (DESIGN "Timing model").
type Timing struct {
	// TTL of the Consul session. The server cannot expire the session
	// before t_sent + TTL, t_sent being when the last confirmed renew was sent.
	TTL time.Duration
	// RenewInterval between renewals; default TTL/3.
	RenewInterval time.Duration
	// KillTimeout between the kill signal and SIGKILL of the command's group.
	KillTimeout time.Duration
	// Margin kept between SIGKILL and the earliest possible server expiry,
	// for clock-rate differences and scheduling delays; default TTL/10.
	Margin time.Duration
}

// WithDefaults fills RenewInterval and Margin when they are zero.
func (t Timing) WithDefaults() Timing {
	if t.RenewInterval == 0 {
		t.RenewInterval = t.TTL / 3
	}
	if t.Margin == 0 {
		t.Margin = t.TTL / 10
	}
	return t
}

// Validate checks renew_interval + kill_timeout + margin < ttl: otherwise a
// single late renewal would already put the command past its kill deadline.
func (t Timing) Validate() error {
	if t.TTL <= 0 {
		return fmt.Errorf("ttl must be positive, got %s", t.TTL)
	}
	if t.RenewInterval <= 0 || t.KillTimeout < 0 || t.Margin <= 0 {
		return fmt.Errorf("renew_interval (%s) and margin (%s) must be positive and kill_timeout (%s) not negative",
			t.RenewInterval, t.Margin, t.KillTimeout)
	}
	if sum := t.RenewInterval + t.KillTimeout + t.Margin; sum >= t.TTL {
		return fmt.Errorf("renew_interval (%s) + kill_timeout (%s) + margin (%s) = %s must be less than ttl (%s): "+
			"after one missed renewal the command must still get its kill signal and kill_timeout before the session can expire",
			t.RenewInterval, t.KillTimeout, t.Margin, sum, t.TTL)
	}
	return nil
}

// Deadlines returns when the command's group gets the kill signal (soft)
// and SIGKILL (hard), given the send time of the last confirmed renewal.
// From hard on the lock counts as lost.
func (t Timing) Deadlines(sent clock.Boottime) (soft, hard clock.Boottime) {
	hard = sent.Add(t.TTL - t.Margin)
	return hard.Add(-t.KillTimeout), hard
}
