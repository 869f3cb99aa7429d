//go:build linux

package supervise

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExitCodeIsExact(t *testing.T) {
	t.Parallel()
	for _, code := range []int{0, 3, 42} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			p, _ := shell(t, "echo $$ > \"$D/pid\"; exit "+strconv.Itoa(code), nil)
			waitClosed(t, p.Done(), 5*time.Second, "Done")
			assertResult(t, p, Result{ExitCode: code})
			// Reaped by the guard, not left as a zombie.
			if !gone(p.Pid()) {
				t.Fatalf("pid %d still exists after Done", p.Pid())
			}
		})
	}
}

func TestExitCodeOfKilledCommand(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			p, _ := shell(t, "kill -"+strconv.Itoa(int(sig))+" $$; sleep 10", nil)
			waitClosed(t, p.Done(), 5*time.Second, "Done")
			assertResult(t, p, Result{ExitCode: 128 + int(sig), Signal: sig})
		})
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		code int
	}{
		{filepath.Join(dir, "missing"), 127},
		{"repolock-no-such-command", 127},
		{"", 127},
		{plain, 126},
		{dir, 126},
	} {
		_, err := Resolve(tc.name)
		var ee *ExecError
		if !errors.As(err, &ee) || ee.Code != tc.code {
			t.Errorf("Resolve(%q) = %v, want ExecError with code %d", tc.name, err, tc.code)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.name) || strings.Contains(msg, "\n") {
			t.Errorf("Resolve(%q) message %q should name the command on one line", tc.name, msg)
		}
	}
	// A bare name found in $PATH comes back absolute.
	if p, err := Resolve("sh"); err != nil || !filepath.IsAbs(p) {
		t.Errorf("Resolve(sh) = %q, %v", p, err)
	}
	// Start refuses before starting anything.
	_, err := Start(Spec{Path: filepath.Join(dir, "missing")})
	var ee *ExecError
	if !errors.As(err, &ee) || ee.Code != 127 {
		t.Errorf("Start(missing) = %v, want code 127", err)
	}
}

// The guard's own execve failures travel back as the same typed error.
func TestStartFailureInGuard(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		spec Spec
		code int
		errs string
	}{
		{"no interpreter", Spec{Path: write("badinterp", "#!/nonexistent/interpreter\n")}, 127, "no such file"},
		{"bad format", Spec{Path: write("garbage", "\x7fELF garbage")}, 126, "exec format error"},
		{"bad dir", Spec{Path: "/bin/true", Dir: filepath.Join(dir, "nodir")}, 126, "chdir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(tc.spec)
			if err == nil {
				<-p.Done()
				t.Fatalf("Start succeeded, result %+v", p.Result())
			}
			var ee *ExecError
			if !errors.As(err, &ee) || ee.Code != tc.code || !strings.Contains(err.Error(), tc.errs) {
				t.Fatalf("Start = %v, want ExecError code %d mentioning %q", err, tc.code, tc.errs)
			}
		})
	}
}

func TestWorkingDirectory(t *testing.T) {
	t.Parallel()
	wd := t.TempDir()
	p, dir := shell(t, `pwd > "$D/pwd"`, func(s *Spec) { s.Dir = wd })
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	if got := waitFile(t, filepath.Join(dir, "pwd"), time.Second); got != wd {
		t.Fatalf("pwd = %q, want %q", got, wd)
	}
}

func TestEnvironmentIsExact(t *testing.T) {
	t.Setenv("SUPERVISE_PARENT_ONLY", "leak")
	out := filepath.Join(t.TempDir(), "env")
	env := []string{helperEnv + "=printenv", "OUT=" + out, "SPACED=a b\nc", "EMPTY=", "GORACE=" + os.Getenv("GORACE")}
	p, err := Start(Spec{Path: os.Args[0], Args: []string{"helper"}, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Done(), 10*time.Second, "Done")
	assertResult(t, p, Result{})
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(string(b), "\x00")
	want := slices.Clone(env)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("command environment = %q, want %q", got, want)
	}
}
