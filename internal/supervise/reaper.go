//go:build linux

package supervise

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reaperPoll backs up SIGCHLD, which coalesces and may predate Notify.
const reaperPoll = 100 * time.Millisecond

// reaper reaps every child of a repolock that runs as PID 1 (in a
// container), where orphans of the whole namespace are re-parented: left
// unreaped they would stay zombies and keep a dead group looking alive.
// Statuses of guards go to their Process; all others are discarded. It runs
// only while a Process is live, so it does not steal children of the rest of
// the program at other times — but while it runs, os/exec's Wait on another
// child of the program fails with ECHILD.
var reaper = &pid1Reaper{waiters: map[int]chan struct{}{}}

type pid1Reaper struct {
	mu      sync.Mutex
	waiters map[int]chan struct{} // guard pid → closed when reaped
	users   int                   // live Processes
	stop    chan struct{}         // closes the running loop
}

// start runs startProc with the lock held, so that the loop cannot reap a
// guard that exits at once before its pid is registered.
func (r *pid1Reaper) start(startProc func() (*os.Process, error)) (*guardProc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	proc, err := startProc()
	if err != nil {
		return nil, err
	}
	// The loop reaps; the pidfd behind proc is not needed. Release also
	// clears proc.Pid, so keep it first.
	pid := proc.Pid
	_ = proc.Release()
	reaped := make(chan struct{})
	r.waiters[pid] = reaped
	if r.users == 0 {
		r.stop = make(chan struct{})
		go r.loop(r.stop)
	}
	r.users++
	var once sync.Once
	return &guardProc{
		pid:     pid,
		wait:    func() { <-reaped },
		release: func() { once.Do(r.release) },
	}, nil
}

func (r *pid1Reaper) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users--
	if r.users == 0 {
		close(r.stop)
	}
}

func (r *pid1Reaper) loop(stop <-chan struct{}) {
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	defer signal.Stop(sigchld)
	tick := time.NewTicker(reaperPoll)
	defer tick.Stop()
	for {
		r.reapAll()
		select {
		case <-stop:
			// The last Process may have left adopted zombies it saw but
			// did not wait for.
			r.reapAll()
			return
		case <-sigchld:
		case <-tick.C:
		}
	}
}

// reapAll collects every exited child without blocking, so the loop can stop
// and never sits in wait4 when no Process needs it.
func (r *pid1Reaper) reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		r.mu.Lock()
		if c, ok := r.waiters[pid]; ok {
			close(c)
			delete(r.waiters, pid)
		}
		r.mu.Unlock()
	}
}
