//go:build linux

package supervise

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Boottime is a point on CLOCK_BOOTTIME in nanoseconds. Unlike Go's
// monotonic clock it keeps counting while the machine is suspended, as the
// Consul servers' clocks do, so lock deadlines are measured on it.
type Boottime int64

// Now reads CLOCK_BOOTTIME.
func Now() Boottime {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// Linux has had CLOCK_BOOTTIME since 2.6.39; without it no deadline
		// can be trusted, so do not limp on.
		panic(fmt.Sprintf("supervise: clock_gettime(CLOCK_BOOTTIME): %v", err))
	}
	return Boottime(ts.Nano())
}

// Add returns b+d.
func (b Boottime) Add(d time.Duration) Boottime { return b + Boottime(d) }

// Sub returns the duration b-c.
func (b Boottime) Sub(c Boottime) time.Duration { return time.Duration(b - c) }
