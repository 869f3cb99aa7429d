//go:build linux

package supervise

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// bootTimerFallback is how often the clock is polled when timerfd is missing;
// far inside any sane kill margin.
const bootTimerFallback = 20 * time.Millisecond

// bootTimer fires at an absolute Boottime. A Go timer would run on the
// monotonic clock and fire late by however long the machine slept; a
// CLOCK_BOOTTIME timerfd fires right after resume instead.
type bootTimer struct {
	C        <-chan struct{}
	c        chan struct{}
	fd       int // -1: polling fallback
	fallback sync.Once
}

func newBootTimer() *bootTimer {
	t := &bootTimer{c: make(chan struct{}, 1), fd: -1}
	t.C = t.c
	fd, err := unix.TimerfdCreate(unix.CLOCK_BOOTTIME, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		t.poll()
		return t
	}
	t.fd = fd
	// A non-blocking fd wrapped by os.NewFile is read through the runtime
	// poller, so the goroutine does not pin a thread.
	f := os.NewFile(uintptr(fd), "repolock-deadline")
	go func() {
		var buf [8]byte
		for {
			if _, err := f.Read(buf[:]); err != nil {
				return
			}
			t.tick()
		}
	}()
	return t
}

// set arms the timer for at, or disarms it when at is 0. The owner re-checks
// Now() on every tick, so spurious ticks are harmless.
func (t *bootTimer) set(at Boottime) {
	if t.fd < 0 {
		return
	}
	var v unix.ItimerSpec
	if at > 0 {
		v.Value = unix.NsecToTimespec(int64(at))
	}
	if err := unix.TimerfdSettime(t.fd, unix.TFD_TIMER_ABSTIME, &v, nil); err != nil {
		t.poll()
	}
}

// poll replaces the timerfd by a ticker, once.
func (t *bootTimer) poll() {
	t.fallback.Do(func() {
		go func() {
			for range time.Tick(bootTimerFallback) {
				t.tick()
			}
		}()
	})
}

func (t *bootTimer) tick() {
	select {
	case t.c <- struct{}{}:
	default:
	}
}
