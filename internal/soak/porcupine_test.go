package soak

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// A second judge of the soak's and the fault matrix's histories, which
// nobody here wrote: Porcupine checks them for linearizability against a
// sequential shared/exclusive lock. Check compares heartbeat windows pair by
// pair; Porcupine instead has to find one order of acquires and releases,
// each inside the time the harness saw it happen, that the lock allows.
// It lives in a _test.go file so that Porcupine stays a test dependency.

// lockOp is the input of one operation: run ID acquires (in Mode) or
// releases the lock on Key.
type lockOp struct {
	Key     string
	ID      int
	Mode    string
	Slots   int // a semaphore's cap, asked with -slots; 0: none
	Release bool
}

// holders is the state of one key's lock: the runs that hold it, with
// their modes and slots. Step never changes a holders it was given.
type holders map[int]holding

type holding struct {
	Mode  string
	Slots int
}

var lockModel = porcupine.Model{
	// Keys are independent locks; Porcupine checks each on its own.
	Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range ops {
			k := op.Input.(lockOp).Key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range slices.Sorted(maps.Keys(byKey)) {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return holders{} },
	Step: func(state, input, _ any) (bool, any) {
		hs, op := state.(holders), input.(lockOp)
		if op.Release {
			if _, ok := hs[op.ID]; !ok {
				return false, hs
			}
			next := maps.Clone(hs)
			delete(next, op.ID)
			return true, next
		}
		least := op.Slots // the smallest cap of the holders and the acquirer
		for _, h := range hs {
			if h.Mode == "exclusive" || op.Mode == "exclusive" {
				return false, hs
			}
			if h.Slots > 0 && (least == 0 || h.Slots < least) {
				least = h.Slots
			}
		}
		if least > 0 && len(hs) >= least {
			return false, hs
		}
		next := maps.Clone(hs)
		next[op.ID] = holding{op.Mode, op.Slots}
		return true, next
	},
	Equal: func(a, b any) bool { return maps.Equal(a.(holders), b.(holders)) },
	DescribeOperation: func(input, _ any) string {
		op := input.(lockOp)
		if op.Release {
			return fmt.Sprintf("run %d releases %s", op.ID, op.Key)
		}
		return fmt.Sprintf("run %d acquires %s (%s)", op.ID, op.Key, op.Mode)
	},
	DescribeState: func(state any) string {
		hs := state.(holders)
		if len(hs) == 0 {
			return "free"
		}
		var s []string
		for _, id := range slices.Sorted(maps.Keys(hs)) {
			s = append(s, fmt.Sprintf("run %d (%s)", id, hs[id].Mode))
		}
		return "held by " + strings.Join(s, ", ")
	},
}

// lockHistory turns the granted runs into Porcupine operations. A run's
// acquire lasts from the harness starting repolock to the command's first
// heartbeat, its release from the last heartbeat to repolock's exit (or the
// last heartbeat, if the command outlived repolock). Porcupine's intervals
// are closed: a first heartbeat at the very microsecond of a conflicting
// last one passes here, while Check calls it an overlap.
//
// Each run gets a row of the visualization (its ClientId): the lowest one
// free since the previous run in it ended, so the rows are about as many
// as the runs that were ever in flight together, not one per run.
func lockHistory(recs []Record) []porcupine.Operation {
	var rs []Record
	for _, r := range recs {
		if r.Started { // never granted: nothing to check
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Requested.Before(rs[j].Requested) })
	var rowEnds []time.Time
	var ops []porcupine.Operation
	for _, r := range rs {
		end := r.Exited
		if end.Before(r.Last) {
			end = r.Last
		}
		row := 0
		for row < len(rowEnds) && !rowEnds[row].Before(r.Requested) {
			row++
		}
		if row == len(rowEnds) {
			rowEnds = append(rowEnds, end)
		}
		rowEnds[row] = end
		ops = append(ops,
			porcupine.Operation{ClientId: row, Input: lockOp{Key: r.Key, ID: r.ID, Mode: r.Mode, Slots: r.Slots},
				Call: r.Requested.UnixNano(), Return: r.First.UnixNano()},
			porcupine.Operation{ClientId: row, Input: lockOp{Key: r.Key, ID: r.ID, Release: true},
				Call: r.Last.UnixNano(), Return: end.UnixNano()})
	}
	return ops
}

// porcupineTimeout bounds the search, which is exponential at worst.
const porcupineTimeout = 30 * time.Second

// checkPorcupine returns nil if Porcupine finds the runs' history
// linearizable. Otherwise it writes Porcupine's visualization, an HTML
// file, into dir and returns its path with an error naming it; a search
// that ran out of time is a failure too, as nothing was proved.
func checkPorcupine(recs []Record, dir, name string) (vis string, err error) {
	res, info := porcupine.CheckOperationsVerbose(lockModel, lockHistory(recs), porcupineTimeout)
	if res == porcupine.Ok {
		return "", nil
	}
	why := "no order of acquires and releases the lock allows fits the history: a command ran beside a conflicting holder's"
	if res == porcupine.Unknown {
		why = fmt.Sprintf("gave up after %s without a verdict (Unknown), so the history is unchecked", porcupineTimeout)
	}
	f, err := os.CreateTemp(dir, "porcupine-"+safeName(name)+"-*.html")
	if err != nil {
		return "", fmt.Errorf("porcupine: %s; and the visualization could not be written: %v", why, err)
	}
	defer f.Close()
	if err := porcupine.Visualize(lockModel, info, f); err != nil {
		return f.Name(), fmt.Errorf("porcupine: %s; writing the visualization %s: %v", why, f.Name(), err)
	}
	return f.Name(), fmt.Errorf("porcupine: %s; visualization: %s", why, f.Name())
}

// safeName makes a test name (subtests have slashes and spaces) fit a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s)
}

// granted is a run on key that asked at req, ran its command from..to and
// exited at exit (milliseconds, see at).
func granted(id int, key, mode string, req, from, to, exit int) Record {
	return Record{ID: id, Key: key, Mode: mode, Started: true, Completed: true, Token: uint64(id),
		Requested: at(req), First: at(from), Last: at(to), Exited: at(exit)}
}

// slot is granted for a shared holder of a semaphore of slots.
func slot(id int, key string, slots, req, from, to, exit int) Record {
	r := granted(id, key, "shared", req, from, to, exit)
	r.Slots = slots
	return r
}

func TestPorcupineAcceptsCleanHistory(t *testing.T) {
	recs := []Record{
		// Exclusives one after another, each queued while the last ran.
		granted(1, "a", "exclusive", 0, 5, 100, 110),
		granted(2, "a", "exclusive", 20, 120, 200, 205),
		granted(3, "a", "exclusive", 30, 210, 300, 300),
		// Shared holders beside each other, then an exclusive after both.
		granted(4, "b", "shared", 0, 10, 200, 210),
		granted(5, "b", "shared", 5, 50, 150, 160),
		granted(6, "b", "exclusive", 6, 220, 300, 310),
		// Another key's exclusive during a's and b's runs.
		granted(7, "c", "exclusive", 0, 1, 400, 401),
		// A semaphore of 2 slots: two at once, a third after one of them.
		slot(9, "d", 2, 0, 10, 200, 210),
		slot(10, "d", 2, 0, 20, 100, 110),
		slot(11, "d", 2, 0, 120, 300, 310),
		// Never granted: no operations.
		{ID: 8, Key: "a", Mode: "exclusive", Exit: 75, Requested: at(0), Exited: at(300)},
	}
	if vs := Check(recs); len(vs) != 0 {
		t.Fatalf("Check: %v", vs)
	}
	if vis, err := checkPorcupine(recs, t.TempDir(), t.Name()); err != nil {
		t.Fatalf("%v (%s)", err, vis)
	}
}

func TestPorcupineRejectsOverlap(t *testing.T) {
	cases := []struct {
		name string
		recs []Record
	}{
		{"two exclusives", []Record{
			granted(1, "a", "exclusive", 0, 10, 100, 110),
			granted(2, "a", "exclusive", 5, 90, 150, 160), // started at 90, run 1 still ran until 100
		}},
		{"three holders of 2 slots", []Record{
			slot(1, "a", 2, 0, 10, 200, 210),
			slot(2, "a", 2, 0, 20, 200, 210),
			slot(3, "a", 2, 5, 150, 250, 260), // started at 150, runs 1 and 2 still ran until 200
		}},
		{"a cap of 2 among caps of 4", []Record{
			slot(1, "a", 4, 0, 10, 200, 210),
			slot(2, "a", 2, 0, 20, 200, 210),
			slot(3, "a", 4, 5, 150, 250, 260),
		}},
		{"exclusive beside shared", []Record{
			granted(1, "a", "shared", 0, 10, 100, 110),
			granted(2, "a", "shared", 0, 20, 200, 210),
			granted(3, "a", "exclusive", 5, 150, 250, 260), // started at 150, run 2 still ran until 200
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var kinds []string
			for _, v := range Check(c.recs) {
				kinds = append(kinds, v.Kind)
			}
			if !slices.Contains(kinds, "overlap") && !slices.Contains(kinds, "over-admission") {
				t.Errorf("Check found %v, no overlap or over-admission", kinds)
			}
			vis, err := checkPorcupine(c.recs, t.TempDir(), t.Name())
			if err == nil {
				t.Fatal("Porcupine accepted the overlap")
			}
			t.Log(err)
			if b, rerr := os.ReadFile(vis); rerr != nil || len(b) == 0 {
				t.Errorf("visualization %q: %d bytes, %v", vis, len(b), rerr)
			}
		})
	}
}
