package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/repolock/repolock/internal/testcluster"
)

// Issue 15 acceptance 1: `status -json` prints [] for every empty list —
// a free lock's entries, the repositories of a key no config names, the
// stale jobs, a last run's notes and native locks — never null, so that
// `jq '.locks[].entries[]'` works on any answer.
func TestStatusJSONEmptyLists(t *testing.T) {
	srv := testcluster.StartServer(t)
	env := srv.Env("")
	ready := filepath.Join(t.TempDir(), "ready")
	// "free" has only its last run; "held" has a live holder.
	if code, out := runRepolock(t, env, "exec", "-key", "free", "--", "true"); code != 0 {
		t.Fatalf("exec: exit %d\n%s", code, out)
	}
	holder := start(t, env, "exec", "-key", "held", "--", "sh", "-c", "echo 1 > "+ready+"; sleep 30")
	waitFile(t, ready, 10*time.Second)
	defer holder.cmd.Process.Kill()

	dir := t.TempDir() // no config.hcl here
	for _, args := range [][]string{{"status", "-json"}, {"status", "-json", "free"}, {"status", "-json", "nothing-here"}} {
		p := startIn(t, dir, env, args...)
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, p.stderr)
		}
		out := p.stderr.String() // stdout and stderr, and status writes only JSON
		if strings.Contains(out, "null") {
			t.Errorf("%v prints null:\n%s", args, out)
		}
		var doc struct {
			Locks []struct {
				Key          string
				Entries      []json.RawMessage
				Repositories []string
				Last         *struct {
					Notes              []string          `json:"notes"`
					NativeLocksCleared []json.RawMessage `json:"native_locks_cleared"`
				}
			}
			Stale []string
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if doc.Stale == nil || doc.Locks == nil {
			t.Errorf("%v: stale or locks missing:\n%s", args, out)
		}
		for _, l := range doc.Locks {
			if l.Entries == nil || l.Repositories == nil || (l.Last != nil && (l.Last.Notes == nil || l.Last.NativeLocksCleared == nil)) {
				t.Errorf("%v: lock %s has a missing list:\n%s", args, l.Key, out)
			}
			if want := map[string]int{"free": 0, "held": 1}[l.Key]; len(l.Entries) != want {
				t.Errorf("%v: lock %s has %d entries, want %d", args, l.Key, len(l.Entries), want)
			}
		}
		if args[len(args)-1] == "-json" && len(doc.Locks) != 2 {
			t.Errorf("status -json shows %d locks, want free and held:\n%s", len(doc.Locks), out)
		}
	}
	_ = os.Remove(ready)
}
