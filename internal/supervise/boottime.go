package supervise

import "github.com/repolock/repolock/internal/clock"

// Boottime is a point on CLOCK_BOOTTIME, the clock the lock's deadlines are
// computed on; the guard, a separate process, reads the same clock.
type Boottime = clock.Boottime

// Now reads CLOCK_BOOTTIME.
func Now() Boottime { return clock.Now() }
