package supervise

import (
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
