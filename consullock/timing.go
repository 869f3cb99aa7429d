package consullock

import (
	"time"

	"github.com/repolock/repolock/internal/timing"
)

// Lease is the lock's timing: the session TTL, how often it is renewed,
// and the margin kept before the server may expire it. Its defaults and
// the relation it must keep with the command's kill timeout are the
// timing model's (internal/timing), which checks it. The lock knows
// nothing of the command it protects: the kill schedule is the caller's.
type Lease struct {
	TTL           time.Duration
	RenewInterval time.Duration
	Margin        time.Duration
}

// model is l in the timing model's terms: the same three durations.
func (l Lease) model() timing.Lease { return timing.Lease(l) }

// Tuning holds the lock's request timing that is not part of the lease.
// Zero fields take the defaults of DefaultTuning; tests shrink them.
type Tuning struct {
	// MinRequestTimeout is the least time a write (session create, entry
	// write, destroy) is given; otherwise a request is bounded by the
	// renew interval, so a frozen agent cannot hold a caller past its
	// deadline.
	MinRequestTimeout time.Duration
	// RetryDelay is the pause before a failed read or renewal is retried.
	RetryDelay time.Duration
	// MaxBlock bounds one blocking query.
	MaxBlock time.Duration
	// CleanupTimeout is the least time the cleanup after a failed Acquire
	// (destroying its session) is given; short, because the caller is
	// waiting to report the failure, and the session expires by TTL anyway.
	CleanupTimeout time.Duration
}

// DefaultTuning is the tuning of a zero Config.Tuning.
func DefaultTuning() Tuning {
	return Tuning{MinRequestTimeout: 5 * time.Second, RetryDelay: 250 * time.Millisecond, MaxBlock: 5 * time.Minute,
		CleanupTimeout: 2 * time.Second}
}

func (t Tuning) withDefaults() Tuning {
	d := DefaultTuning()
	if t.MinRequestTimeout <= 0 {
		t.MinRequestTimeout = d.MinRequestTimeout
	}
	if t.RetryDelay <= 0 {
		t.RetryDelay = d.RetryDelay
	}
	if t.MaxBlock <= 0 {
		t.MaxBlock = d.MaxBlock
	}
	if t.CleanupTimeout <= 0 {
		t.CleanupTimeout = d.CleanupTimeout
	}
	return t
}
