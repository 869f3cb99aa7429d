package main_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// slotRun is one `repolock exec -slots` contender: its command writes its
// fencing token, then heartbeats for a while.
type slotRun struct {
	p                  *proc
	beats, token       string
	exclusive          bool
	slots              int
	first, last        int64 // its first and last heartbeat
	tok                uint64
	liveFrom, liveTill int64 // while its session may constrain others
}

func startSlotRun(t *testing.T, env []string, dir, key string, i, slots, beats int, exclusive bool) *slotRun {
	t.Helper()
	r := &slotRun{beats: filepath.Join(dir, fmt.Sprintf("beats-%d", i)), token: filepath.Join(dir, fmt.Sprintf("token-%d", i)),
		exclusive: exclusive, slots: slots}
	args := []string{"exec", "-key", key, "-wait", "1m", "-ttl", "4s", "-kill-timeout", "1s"}
	if exclusive {
		args = append(args, "-mode", "exclusive")
	} else {
		args = append(args, "-slots", strconv.Itoa(slots))
	}
	script := fmt.Sprintf(`echo "$REPOLOCK_FENCING_TOKEN" > %q; %s`, r.token, heartbeatScript(r.beats, beats))
	r.p = start(t, env, append(args, "--", "sh", "-c", script)...)
	return r
}

// finish waits for the run and reads its heartbeats and token.
func (r *slotRun) finish(t *testing.T) {
	t.Helper()
	if code := r.p.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("%v exited %d, want 0:\n%s", r.p.cmd.Args, code, r.p.stderr)
	}
	hb := heartbeats(t, r.beats)
	r.first, r.last = hb[0], hb[len(hb)-1]
	tok, err := strconv.ParseUint(strings.TrimSpace(waitFile(t, r.token, time.Second)), 10, 64)
	if err != nil {
		t.Fatalf("token of %v: %v", r.p.cmd.Args, err)
	}
	r.tok = tok
}

// mostAt is the largest number of runs whose heartbeats overlap at any
// moment within [from, till].
func mostAt(runs []*slotRun, from, till int64) int {
	type event struct {
		at    int64
		delta int
	}
	var evs []event
	for _, r := range runs {
		a, b := max(r.first, from), min(r.last, till)
		if a <= b {
			evs = append(evs, event{a, 1}, event{b, -1})
		}
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].delta > evs[j].delta // touching counts as overlap
	})
	n, most := 0, 0
	for _, e := range evs {
		n += e.delta
		most = max(most, n)
	}
	return most
}

// Issue 17, acceptance 1 and 3: `repolock exec -slots`, the `consul lock
// -n` replacement, judged by the commands' own heartbeats.
func TestExecSlots(t *testing.T) {
	srv := testcluster.StartServer(t)
	env := srv.Env("")

	t.Run("30 contenders of 3 slots and an exclusive one", func(t *testing.T) {
		dir := t.TempDir()
		seed := uint64(time.Now().UnixNano())
		rng := rand.New(rand.NewPCG(seed, 17))
		t.Logf("seed %d", seed)
		var runs []*slotRun
		var excl *slotRun
		for i := range 30 {
			time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond) // random starts over about 3 s
			runs = append(runs, startSlotRun(t, env, dir, "slots", i, 3, 10+rng.IntN(41), false))
			if i == 14 {
				excl = startSlotRun(t, env, dir, "slots", 100, 0, 10, true)
			}
		}
		for _, r := range append(runs, excl) {
			r.finish(t)
		}
		most := mostAt(runs, 0, 1<<62)
		t.Logf("at most %d of 30 commands of 3 slots ran at once", most)
		if most > 3 || most < 2 {
			t.Errorf("at most %d commands ran at once, want 3 (and never more)", most)
		}
		for _, r := range runs {
			if r.first <= excl.last && excl.first <= r.last {
				t.Errorf("the exclusive contender ran beside a slot holder (token %d)", r.tok)
			}
			// FIFO by token (the session's CreateIndex): the exclusive
			// contender splits the queue in two.
			if (r.tok < excl.tok) != (r.last < excl.first) {
				t.Errorf("slot holder of token %d ran on the wrong side of the exclusive one (token %d)", r.tok, excl.tok)
			}
		}
		// FIFO among the slot holders: none started well before one queued
		// ahead of it (50 ms for a command's start).
		for _, a := range runs {
			for _, b := range runs {
				if a.tok < b.tok && b.first < a.first-int64(50*time.Millisecond) {
					t.Errorf("token %d started %s before token %d, which queued ahead of it", b.tok, time.Duration(a.first-b.first), a.tok)
				}
			}
		}
	})

	t.Run("contenders disagree: 2 and 4 slots", func(t *testing.T) {
		// Never more than 2 while a contender of 2 slots is live: the
		// smallest cap of a live contender is in force.
		dir := t.TempDir()
		c := srv.Client(t)
		a := startSlotRun(t, env, dir, "slots-disagree", 0, 2, 60, false)
		waitFile(t, a.beats, 10*time.Second)
		runs := []*slotRun{a}
		for i := 1; i <= 4; i++ {
			runs = append(runs, startSlotRun(t, env, dir, "slots-disagree", i, 4, 15, false))
		}
		b := startSlotRun(t, env, dir, "slots-disagree", 5, 2, 15, false)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			keys, _, err := c.KV().Keys(consullock.RepoPrefix("", "slots-disagree")+"lock/", "", nil)
			must(t, err)
			if len(keys) >= 6 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the second contender of 2 slots is not queued after 10 s:\n%s", b.p.stderr)
			}
		}
		b.liveFrom = time.Now().UnixNano()
		runs = append(runs, b)
		for i := 6; i <= 9; i++ {
			runs = append(runs, startSlotRun(t, env, dir, "slots-disagree", i, 4, 15, false))
		}
		for _, r := range runs {
			r.finish(t)
		}
		if b.liveFrom > a.last {
			t.Fatalf("the first contender of 2 slots ended before the second was queued: the test shows nothing")
		}
		most := max(mostAt(runs, a.first, a.last), mostAt(runs, b.liveFrom, b.last))
		overall := mostAt(runs, 0, 1<<62)
		t.Logf("at most %d ran at once while a contender of 2 slots was live (%d at any time)", most, overall)
		if most > 2 {
			t.Errorf("%d commands ran at once while a contender of 2 slots was live, want at most 2", most)
		}
		logged := false
		for _, r := range runs {
			logged = logged || strings.Contains(r.p.stderr.String(), "different numbers of slots")
		}
		if !logged {
			t.Error("no contender logged that the contenders disagree on the slots")
		}
	})

	t.Run("bad -slots", func(t *testing.T) {
		for _, args := range [][]string{{"-slots", "0"}, {"-slots", "-2"}, {"-slots", "3", "-mode", "exclusive"}, {"-slots", "99999"}} {
			marker := filepath.Join(t.TempDir(), "ran")
			code, out := runRepolock(t, env, append(append([]string{"exec", "-key", "slots-bad"}, args...), "--", "touch", marker)...)
			if code != 64 || !strings.Contains(out, "slots") {
				t.Errorf("exec %v: exit %d, want 64 naming -slots:\n%s", args, code, out)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("exec %v ran the command", args)
			}
		}
	})
}
