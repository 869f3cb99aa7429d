package supervise

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A guard spawned ahead of its command runs it like Start does.
func TestSpawnThenStart(t *testing.T) {
	g, err := Spawn("sh")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the guard idles, as while a lock is awaited
	p, err := g.Start(Spec{Path: "sh", Args: []string{"sh", "-c", "exit 5"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not done")
	}
	if got := p.Result().ExitCode; got != 5 {
		t.Fatalf("exit %d, want 5", got)
	}
	if _, err := g.Start(Spec{Path: "true"}); err == nil {
		t.Fatal("a guard started a second command")
	}
	g.Close() // no-op after Start
}

// A guard that never gets its command exits when closed.
func TestSpawnClose(t *testing.T) {
	g, err := Spawn("never")
	if err != nil {
		t.Fatal(err)
	}
	pid := g.p.guard.pid
	g.Close()
	if !gone(pid) {
		t.Fatalf("guard %d still exists after Close", pid)
	}
}

// Control calls racing the guard's exit after a quick command never fail
// with a broken pipe: they return nil or ErrDone, so a caller does not
// mistake a finished command for a lost guard.
func TestControlRacesGuardExit(t *testing.T) {
	for i := 0; i < 20; i++ {
		p, err := Start(Spec{Path: "true", Args: []string{"true"}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			err := p.SetDeadline(Now().Add(time.Minute), Now().Add(2*time.Minute))
			if err != nil && !errors.Is(err, ErrDone) {
				t.Fatalf("run %d: SetDeadline while the guard exits: %v", i, err)
			}
			if err != nil {
				break
			}
		}
		waitClosed(t, p.Done(), 5*time.Second, "done")
	}
}

// Spec.Stdout takes the command's standard output, and only that (stderr
// stays repolock's); a guard spawned ahead cannot take it, since the file
// must be the guard's own fd 1 from its start.
func TestSpecStdout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spec := Spec{Path: "sh", Args: []string{"sh", "-c", "echo hello; echo err >&2"}, Stdout: f}
	p, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	cleanupProcess(t, p, 0)
	waitClosed(t, p.Done(), 5*time.Second, "Done")
	assertResult(t, p, Result{ExitCode: 0})
	if b, err := os.ReadFile(path); err != nil || string(b) != "hello\n" {
		t.Fatalf("Stdout file holds %q (%v), want %q", b, err, "hello\n")
	}

	g, err := Spawn("sh")
	if err != nil {
		t.Fatal(err)
	}
	pid := g.p.guard.pid
	if _, err := g.Start(spec); err == nil || !strings.Contains(err.Error(), "use Start") {
		t.Fatalf("Guard.Start with Stdout: err = %v, want the Stdout error", err)
	}
	if !gone(pid) {
		t.Fatalf("guard %d still exists after the refused Start", pid)
	}
}
