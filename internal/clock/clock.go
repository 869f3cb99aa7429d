// Package clock reads CLOCK_BOOTTIME, the clock of the timing model.
//
// Go's monotonic clock stops while the machine is suspended, but Consul's
// session timers on the servers do not: a lease measured on the monotonic
// clock would look younger than it is after a suspend. CLOCK_BOOTTIME keeps
// counting, and it is the same clock in every process of the machine, so a
// deadline computed by repolock can be handed to its guard process as is.
package clock

import (
	"time"

	"golang.org/x/sys/unix"
)

// Boottime is a point on CLOCK_BOOTTIME, in nanoseconds since boot.
type Boottime int64

// Now reads CLOCK_BOOTTIME.
func Now() Boottime {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// CLOCK_BOOTTIME exists on every Linux since 2.6.39; failing here
		// means the timing model cannot be kept at all.
		panic("clock: CLOCK_BOOTTIME: " + err.Error())
	}
	return Boottime(ts.Nano())
}

// Add returns b moved by d.
func (b Boottime) Add(d time.Duration) Boottime { return b + Boottime(d) }

// Sub returns the duration b − c.
func (b Boottime) Sub(c Boottime) time.Duration { return time.Duration(b - c) }
