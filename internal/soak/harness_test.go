package soak

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/internal/supervise"
	"github.com/repolock/repolock/internal/testcluster"
)

// binary is the repolock built once for these tests.
var binary string

func TestMain(m *testing.M) { testcluster.MainWithRepolock(m, &binary) }

// fast is the timing of most runs: soft deadline 2.5 s after a renewal
// was sent, SIGKILL 1 s later, expiry no earlier than 4 s.
var fast = []string{"-ttl", "4s", "-renew-interval", "1s", "-margin", "500ms", "-kill-timeout", "1s"}

// slow outlasts a leader election (about 1–2 s on loopback).
var slow = []string{"-ttl", "8s", "-renew-interval", "2s", "-margin", "1s", "-kill-timeout", "1s"}

// harness starts repolock runs whose commands write heartbeat files under
// one directory, and collects their records.
type harness struct {
	t     testing.TB
	dir   string
	token string // every run's ACL token ("" for none)

	mu   sync.Mutex
	next int
	live map[int]*run
	recs []Record
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, dir: t.TempDir(), live: map[int]*run{}}
}

// run is one repolock exec process.
type run struct {
	rec    Record
	file   string
	cmd    *exec.Cmd
	out    *testcluster.SyncBuffer
	done   chan struct{}
	frozen atomic.Bool // a freeze of repolock or its guard is in progress
}

// spec says what one run does.
type spec struct {
	agent      *testcluster.Agent
	key, mode  string
	slots      int           // -slots, for a semaphore key; 0: none
	length     time.Duration // how long the command runs
	ignoreTerm bool
	flags      []string // timing, -wait
}

func (h *harness) start(s spec) *run {
	h.t.Helper()
	h.mu.Lock()
	h.next++
	id := h.next
	h.mu.Unlock()
	r := &run{rec: Record{ID: id, Key: s.key, Mode: s.mode, Slots: s.slots}, out: &testcluster.SyncBuffer{}, done: make(chan struct{}),
		file: filepath.Join(h.dir, fmt.Sprintf("run-%05d.hb", id))}
	ignore := "0"
	if s.ignoreTerm {
		ignore = "1"
	}
	args := append([]string{"exec", "-key", s.key, "-mode", s.mode}, s.flags...)
	if s.slots > 0 {
		args = append(args, "-slots", strconv.Itoa(s.slots))
	}
	args = append(args, "--", "bash", "-c", Script, "soak", r.file, strconv.FormatInt(s.length.Milliseconds(), 10), ignore)
	r.cmd = exec.Command(binary, args...)
	r.cmd.Env = append(testcluster.CleanEnv(), s.agent.Env(h.token)...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r.rec.Requested = time.Now()
	if err := r.cmd.Start(); err != nil {
		h.t.Fatalf("start repolock: %v", err)
	}
	h.mu.Lock()
	h.live[id] = r
	h.mu.Unlock()
	go func() {
		_ = r.cmd.Wait()
		r.rec.Exited = time.Now()
		r.rec.Exit = r.cmd.ProcessState.ExitCode()
		h.mu.Lock()
		delete(h.live, id)
		h.mu.Unlock()
		close(r.done)
	}()
	h.t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGCONT)
		_ = r.cmd.Process.Kill()
		<-r.done
	})
	return r
}

// finish waits for the run to end and records it with its heartbeats.
func (h *harness) finish(r *run, limit time.Duration) Record {
	h.t.Helper()
	select {
	case <-r.done:
	case <-time.After(limit):
		h.t.Errorf("run %d did not end within %s; output:\n%s", r.rec.ID, limit, r.out)
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	if ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.rec.Killed = true
	}
	// repolock's exit does not end the command at the same instant (after
	// a SIGKILL of repolock the guard kills it a moment later): read the
	// file once the command's processes are gone, so no heartbeat is missed.
	if data, err := os.ReadFile(r.file); err == nil {
		probe := r.rec
		_ = ParseHeartbeats(&probe, data)
		waitGone(probe.Pids, 10*time.Second)
	}
	if data, err := os.ReadFile(r.file); err == nil {
		if err := ParseHeartbeats(&r.rec, data); err != nil {
			h.t.Error(err)
		}
	}
	h.mu.Lock()
	h.recs = append(h.recs, r.rec)
	h.mu.Unlock()
	return r.rec
}

// waitGone waits until none of pids runs (gone, or a zombie), at most
// limit; a process that outlives it is reported by leftovers.
func waitGone(pids []int, limit time.Duration) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		alive := false
		for _, p := range pids {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			// The state follows the command name in parentheses.
			if i := strings.LastIndexByte(string(b), ')'); err == nil && i > 0 && i+2 < len(b) && b[i+2] != 'Z' {
				alive = true
			}
		}
		if !alive {
			return
		}
	}
}

// waitStarted waits until the run's command wrote its start line.
func (r *run) waitStarted(t testing.TB, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if r.hasStarted() {
			return
		}
		select {
		case <-r.done:
			t.Fatalf("run %d ended (exit %d) before its command started:\n%s", r.rec.ID, r.cmd.ProcessState.ExitCode(), r.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("run %d: command not started within %s:\n%s", r.rec.ID, limit, r.out)
}

// hasStarted reports whether the command wrote its start and bg lines.
func (r *run) hasStarted() bool {
	b, err := os.ReadFile(r.file)
	return err == nil && strings.Contains(string(b), "\nbg ")
}

// guard returns the pid of the run's guard process, 0 if there is none.
func (r *run) guard() int {
	kids, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", r.cmd.Process.Pid))
	for _, f := range kids {
		b, _ := os.ReadFile(f)
		for _, p := range strings.Fields(string(b)) {
			cl, _ := os.ReadFile("/proc/" + p + "/cmdline")
			if strings.Contains(string(cl), supervise.GuardArg) {
				return atoi(p)
			}
		}
	}
	return 0
}

// violations checks all records so far, with Check and with Porcupine,
// and reports each violation. Porcupine's visualization of a failure goes
// next to the soak report, or into the system's temporary directory (a
// test's own would be removed with it).
func (h *harness) violations() []Violation {
	h.mu.Lock()
	defer h.mu.Unlock()
	vs := Check(h.recs)
	dir := os.TempDir()
	if f := os.Getenv("REPOLOCK_SOAK_REPORT"); f != "" {
		dir = filepath.Dir(f)
	}
	if _, err := checkPorcupine(h.recs, dir, h.t.Name()); err != nil {
		vs = append(vs, Violation{"porcupine", err.Error()})
	}
	for _, v := range vs {
		h.t.Errorf("%s: %s", v.Kind, v.Detail)
	}
	return vs
}

// leftovers lists processes still alive that belong to the runs: a command
// or background subshell (their command line names the heartbeat
// directory), or a repolock or guard (their executable is the built binary).
func (h *harness) leftovers() []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		st, _ := os.ReadFile(p + "/stat")
		if i := strings.LastIndexByte(string(st), ')'); i < 0 || strings.HasPrefix(string(st[i+1:]), " Z") {
			continue // gone, or a zombie waiting for its parent
		}
		cl, _ := os.ReadFile(p + "/cmdline")
		exe, _ := os.Readlink(p + "/exe")
		if strings.Contains(string(cl), h.dir) || exe == binary {
			out = append(out, fmt.Sprintf("%s: %s", filepath.Base(p), strings.ReplaceAll(string(cl), "\x00", " ")))
		}
	}
	return out
}

// waitNoLeftovers waits up to limit for every process of the runs to end.
func (h *harness) waitNoLeftovers(limit time.Duration) []string {
	deadline := time.Now().Add(limit)
	for {
		left := h.leftovers()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leaks waits up to limit for every repolock session and lock entry to go
// (a SIGKILLed repolock's session expires by TTL, up to twice the TTL after
// a leader change), and returns those still there.
func leaks(t testing.TB, c *api.Client, limit time.Duration) (sessions, entries []string, leftovers int) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		sessions, entries = nil, nil
		ss, _, err := c.Session().List(nil)
		if err == nil {
			for _, s := range ss {
				if strings.HasPrefix(s.Name, "repolock ") {
					sessions = append(sessions, s.ID+" "+s.Name)
				}
			}
		}
		// An entry with a session is a lock left behind. One with none
		// is what a hostile `kv put -release` leaves when its contender is
		// gone (killed, or ended before it saw the release): it holds
		// nothing back, and `break` removes it; leftovers counts those.
		kvs, _, err2 := c.KV().List("repolock/repos/", nil)
		if err2 == nil {
			for _, kv := range kvs {
				if strings.Contains(kv.Key, "/lock/") && kv.Session != "" {
					entries = append(entries, kv.Key)
				}
			}
		}
		if (err == nil && err2 == nil && len(sessions)+len(entries) == 0) || time.Now().After(deadline) {
			if err != nil || err2 != nil {
				t.Errorf("listing sessions and entries: %v %v", err, err2)
			}
			return sessions, entries, countLeftovers(c)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// countLeftovers counts the lock entries with no session (see leaks).
func countLeftovers(c *api.Client) int {
	kvs, _, err := c.KV().List("repolock/repos/", nil)
	if err != nil {
		return -1
	}
	n := 0
	for _, kv := range kvs {
		if strings.Contains(kv.Key, "/lock/") && kv.Session == "" {
			n++
		}
	}
	return n
}
