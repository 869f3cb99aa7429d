package run

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/clock"
	"github.com/repolock/repolock/internal/latest"
)

// held is the set of locks one command runs under (usually one; two for a
// restic copy), seen as one lease: its last confirmed renewal is the
// oldest of theirs, and it is lost when any of them is.
type held struct {
	locks   []*consullock.Lock
	targets []Target
	ctx     context.Context
	cancel  context.CancelCauseFunc
	leases  *latest.Chan[clock.Boottime]
	stop    chan struct{}
	wg      sync.WaitGroup
	timeout time.Duration // bounds each release
}

func newHeld(targets []Target, locks []*consullock.Lock, timeout time.Duration) *held {
	h := &held{locks: locks, targets: targets, leases: latest.New[clock.Boottime](), stop: make(chan struct{}), timeout: timeout}
	h.ctx, h.cancel = context.WithCancelCause(context.Background())
	for _, l := range locks {
		h.wg.Add(1)
		go h.follow(l)
	}
	return h
}

// follow forwards one lock's renewals and its loss to the set.
func (h *held) follow(l *consullock.Lock) {
	defer h.wg.Done()
	for {
		select {
		case <-h.stop:
			return
		case <-l.Leases():
			// Only the newest matters; never block, or a follower could
			// hang once nobody reads (after the command, during release).
			h.leases.Set(h.LastSent())
		case <-l.Context().Done():
			if cause := context.Cause(l.Context()); errors.Is(cause, consullock.ErrLost) {
				h.cancel(cause)
			}
			return
		}
	}
}

// LastSent is the send time of the oldest last confirmed renewal.
func (h *held) LastSent() clock.Boottime {
	oldest := h.locks[0].LastSent()
	for _, l := range h.locks[1:] {
		oldest = min(oldest, l.LastSent())
	}
	return clock.Boottime(oldest) // consullock reads the same CLOCK_BOOTTIME
}

// Context is cancelled, with the loss as its cause, when any lock is lost.
func (h *held) Context() context.Context { return h.ctx }

// lost is the cause of a loss of any lock, read from the locks themselves
// (the set's context hears of it a goroutine later), or nil.
func (h *held) lost() error {
	for _, l := range h.locks {
		if cause := context.Cause(l.Context()); l.Context().Err() != nil && errors.Is(cause, consullock.ErrLost) {
			return cause
		}
	}
	return nil
}

// renewErr is how the last renewal of a lock failed, for the first lock
// whose last renewal did; nil when none did.
func (h *held) renewErr() error {
	for _, l := range h.locks {
		if err := l.RenewErr(); err != nil {
			return err
		}
	}
	return nil
}

// Leases delivers LastSent after each confirmed renewal of any lock.
func (h *held) Leases() <-chan clock.Boottime { return h.leases.C() }

// primary is the lock of the job's own repository.
func (h *held) primary() (*consullock.Lock, Target) {
	for i, t := range h.targets {
		if t.Primary {
			return h.locks[i], t
		}
	}
	return h.locks[0], h.targets[0]
}

// release ends every lock, newest first; whatever fails to end expires by TTL.
func (h *held) release() []error {
	close(h.stop)
	var errs []error
	for i := len(h.locks) - 1; i >= 0; i-- {
		ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
		if err := h.locks[i].Release(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.targets[i].Key, err))
		}
		cancel()
	}
	h.wg.Wait()
	h.cancel(consullock.ErrReleased)
	return errs
}

// acquire takes every target's lock in the spec's order, within one wait.
// A terminating signal while waiting abandons the wait; locks already
// taken are released.
func (r *Runner) acquire(ctx context.Context, spec Spec, targets []Target) (*held, error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	var locks []*consullock.Lock
	go func() {
		deadline := time.Now().Add(spec.Wait)
		for _, t := range targets {
			l, err := consullock.Acquire(actx, r.lockConfig(spec, t, max(time.Until(deadline), 0)))
			if err != nil {
				done <- err
				return
			}
			locks = append(locks, l)
		}
		done <- nil
	}()
	for {
		select {
		case err := <-done:
			if err != nil {
				releaseAll(locks, spec)
				return nil, err
			}
			return newHeld(targets, locks, releaseTimeout(spec)), nil
		case sig := <-r.Signals:
			s, _ := sig.(syscall.Signal)
			if !terminating(s) {
				r.Log.Info("no command runs yet; signal not forwarded", "signal", signalName(s))
				continue
			}
			cancel()
			<-done
			releaseAll(locks, spec)
			return nil, &InterruptedError{Signal: s, During: "while waiting for the lock"}
		}
	}
}

func releaseAll(locks []*consullock.Lock, spec Spec) {
	for _, l := range locks {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout(spec))
		_ = l.Release(ctx)
		cancel()
	}
}

// releaseTimeout bounds a release: a renewal interval, at least 2s.
func releaseTimeout(spec Spec) time.Duration { return max(spec.Timing.RenewInterval, 2*time.Second) }

func (r *Runner) lockConfig(spec Spec, t Target, wait time.Duration) consullock.Config {
	rtt := r.Summary.RenewRTT
	return consullock.Config{
		Client: r.Client, SessionClient: r.SessionClient, Datacenter: r.Datacenter, Prefix: spec.Prefix, Key: t.Key, Node: spec.SessionNode, Mode: t.Mode, Slots: t.Slots, Limit: t.Limit,
		Lease: consullock.Lease(spec.Timing.Lease), Wait: wait, Holder: spec.Holder, Logger: r.Log,
		OnRenew: func(d time.Duration) {
			if rtt != nil {
				rtt.Observe(d.Seconds())
			}
		},
		OnBusy: func(ahead []consullock.Record) {
			h := ahead[0]
			what := "lock busy; waiting"
			if t.Limit {
				what = "limit busy (every slot taken); waiting"
			}
			r.Log.Info(what, "key", t.Key, "limit", t.Limit, "wait", spec.Wait, "holder",
				h.Holder.String(), "holder_mode", h.Mode, "ahead", len(ahead))
		},
	}
}
