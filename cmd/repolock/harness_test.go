package main_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/repolock/repolock/internal/testcluster"
)

// binary is the repolock built once for these tests.
var binary string

func TestMain(m *testing.M) { testcluster.MainWithRepolock(m, &binary) }

// fastFlags keep fault tests at seconds; agents run with session_ttl_min 1s.
var fastFlags = []string{"-ttl", "2s", "-renew-interval", "500ms", "-kill-timeout", "500ms", "-margin", "300ms"}

// proc is one repolock process under test.
type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
	code   int
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startIn(t, "", env, args...)
}

// startIn starts repolock in the working directory dir ("" for the test's).
func startIn(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	return startCmd(t, dir, nil, env, args...)
}

// startWithStdin starts repolock reading stdin.
func startWithStdin(t *testing.T, env []string, stdin *os.File, args ...string) *proc {
	t.Helper()
	return startCmd(t, "", stdin, env, args...)
}

func startCmd(t *testing.T, dir string, stdin *os.File, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = stdin
	}
	return startProc(t, cmd, env)
}

// startProc starts cmd, a repolock (or a wrapper of one), with env.
func startProc(t *testing.T, cmd *exec.Cmd, env []string) *proc {
	t.Helper()
	p := &proc{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(testcluster.CleanEnv(), env...)
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = 128 + int(ws.Signal())
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait returns the exit code, failing the test after limit.
func (p *proc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(limit):
		t.Fatalf("repolock %v did not exit within %s; output:\n%s", p.cmd.Args[1:], limit, p.stderr)
	}
	return -1
}

func runRepolock(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	p := start(t, env, args...)
	code := p.wait(t, 60*time.Second)
	return code, p.stderr.String()
}

// waitFile waits until path exists and is not empty, and returns its content.
func waitFile(t *testing.T, path string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s not written within %s", path, limit)
	return ""
}

// heartbeats reads a file of "<unix nanoseconds>" lines: heartbeatScript's
// records, or one `date +%s%N`. Every line must be whole. A time cut short
// still parses, as a much smaller and wrong number (a last heartbeat that
// seems long before the real one), so a line that is not 19 digits (the
// width of %s%N from 2001 to 2286), or a last line without its newline,
// fails the test instead of being read or skipped.
func heartbeats(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read heartbeats: %v", err)
	}
	text := string(b)
	if text == "" {
		t.Fatalf("no heartbeats in %s", path)
	}
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("%s: last heartbeat cut short: %q", path, text[strings.LastIndexByte(text, '\n')+1:])
	}
	var out []int64
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		f := strings.TrimRight(line, " ")
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || len(f) != 19 {
			t.Fatalf("%s: line %d is not a whole heartbeat: %q", path, i+1, line)
		}
		out = append(out, n)
	}
	return out
}

// heartbeatScript writes the time to file every 20ms, forever or count times.
// Each record is 32 bytes (19 digits, 12 spaces, a newline) and written by
// one write(2) of date's, so that none straddles a 4 KiB page boundary:
// such a write becomes visible in two parts, and a SIGKILL or a fatal
// SIGTERM between them (the command's group is killed while it writes)
// leaves the record cut. Within one page a record appears whole or not at
// all.
func heartbeatScript(file string, count int) string {
	loop := "while :"
	if count > 0 {
		loop = fmt.Sprintf("i=0; while [ $i -lt %d ]", count)
	}
	return fmt.Sprintf(`%s; do date +'%%s%%N            ' >> %q; i=$((i+1)); sleep 0.02; done`, loop, file)
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// A zombie still answers kill(0); it is dead for our purposes.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) < 3 || f[2] != "Z"
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(waitFile(t, path, 10*time.Second)))
	if err != nil {
		t.Fatalf("pid file %s: %v", path, err)
	}
	return n
}
