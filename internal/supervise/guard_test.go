//go:build linux

package supervise

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helper runs the test binary in a helper role, as a separate "repolock".
func helper(t *testing.T, role, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, "SUPERVISE_TEST_DIR="+dir)
	return cmd
}

// When repolock is SIGKILLed, the guard kills the command's whole group and
// a process that left it (setsid) at once, without a kill timeout.
func TestRepolockKilledTakesGroupAlong(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := helper(t, "r-killed", dir)
	// A file, not a pipe: Wait would wait for every process holding a
	// pipe's write end, guard and command included.
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	r.Stderr = stderr
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	pid := waitPidFile(t, filepath.Join(dir, "pid"))
	gpid := waitPidFile(t, filepath.Join(dir, "gpid"))
	spid := waitPidFile(t, filepath.Join(dir, "spid"))
	if notRunning(pid) || notRunning(gpid) || notRunning(spid) {
		t.Fatalf("command %d, grandchild %d or escapee %d not running before repolock is killed", pid, gpid, spid)
	}
	if _, pgid, ok := procStat(strconv.Itoa(spid)); !ok || pgid == pid {
		t.Fatalf("escapee %d in group %d, want outside the command's group %d", spid, pgid, pid)
	}
	if err := r.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = r.Wait()
	killed := time.Now()
	eventually(t, 2*time.Second, "command, grandchild and escapee gone", func() bool {
		return gone(pid) && gone(gpid) && gone(spid)
	})
	t.Logf("gone %v after repolock died", time.Since(killed))
	if b, _ := os.ReadFile(stderr.Name()); len(b) > 0 {
		t.Logf("helper stderr: %s", b)
	}
}

// Signals aimed at the guard itself (a terminal's Ctrl-C reaches R's whole
// group) neither kill it nor reach the command.
func TestGuardSurvivesGroupSignals(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, `
trap 'echo usr1 >> "$D/usr1"' USR1
echo ready > "$D/ready"
while :; do sleep 1 & wait; done`, nil)
	waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
	for _, s := range guardSurvives {
		if err := syscall.Kill(p.guard.pid, s.(syscall.Signal)); err != nil {
			t.Fatal(err)
		}
	}
	// A round trip through the guard proves it still works.
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if got := waitFile(t, filepath.Join(dir, "usr1"), 5*time.Second); got != "usr1" {
		t.Fatalf("command saw %q, want exactly the one forwarded USR1", got)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	assertResult(t, p, Result{ExitCode: 128 + 15, Signal: syscall.SIGTERM})
}

// The guard catches signals instead of ignoring them, so the command starts
// with default dispositions (except those ignored when repolock started).
func TestCommandSignalDispositions(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, `exec cat /proc/self/status > "$D/status"`, nil)
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	b, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		t.Fatal(err)
	}
	var ignored uint64
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
			ignored, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	for _, s := range guardSurvives {
		n := s.(syscall.Signal)
		got := ignored&(1<<(n-1)) != 0
		if want := signal.Ignored(s); got != want {
			t.Errorf("%v ignored in the command = %v, want %v", n, got, want)
		}
	}
}

// If the guard dies without reporting, repolock kills the group itself and
// reports the status as unknown.
func TestGuardDeathMakesStatusUnknown(t *testing.T) {
	t.Parallel()
	p, dir := shell(t, `sleep 100 & echo $! > "$D/gpid"; wait`, nil)
	gpid := waitPidFile(t, filepath.Join(dir, "gpid"))
	if err := syscall.Kill(p.guard.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	assertResult(t, p, Result{ExitCode: -1, Unknown: true})
	// Their parent is now an init that may not reap, so zombies may stay.
	for _, pid := range []int{p.Pid(), gpid} {
		if !notRunning(pid) {
			t.Errorf("pid %d still running after Done", pid)
		}
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, ErrDone) {
		t.Errorf("Signal after Done = %v, want ErrDone", err)
	}
}

// A write to a closed stdout fails with EPIPE instead of killing repolock.
func TestClosedStdoutDoesNotKillRepolock(t *testing.T) {
	t.Parallel()
	r := helper(t, "epipe", t.TempDir())
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	r.Stdout = pw
	var stderr bytes.Buffer
	r.Stderr = &stderr
	err = r.Run()
	pw.Close()
	if err != nil {
		t.Fatalf("helper: %v (%s)", err, stderr.String())
	}
}

// A guard stopped with SIGSTOP cannot report the command's end nor act on a
// stop; ResumeGuard finds it stopped and continues it, and does nothing to
// a running guard or after the guard was reaped.
func TestResumeGuard(t *testing.T) {
	t.Parallel()
	p, _ := shell(t, `sleep 0.3`, nil)
	if p.ResumeGuard() {
		t.Fatal("ResumeGuard resumed a guard that runs")
	}
	if err := syscall.Kill(p.guard.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !p.ResumeGuard() {
		if time.Now().After(deadline) {
			t.Fatal("ResumeGuard never found the guard stopped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitClosed(t, p.Done(), 5*time.Second, "Done after the guard was resumed")
	assertResult(t, p, Result{ExitCode: 0})
	if p.ResumeGuard() {
		t.Error("ResumeGuard acted after the guard was reaped")
	}
}
