// Package soak checks the guarantees over many real repolock runs at once:
// every command writes a heartbeat file, and Check reads the files of all
// runs against each other. The harness that starts the Consul cluster, the
// runs and the faults is in this package's tests (`make soak`, and a short
// version in `make test`); the checks are plain logic with unit tests.
package soak

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/repolock/repolock/internal/exitcode"
)

// Script is the command every run executes with bash -c, with the
// heartbeat file, the run length in milliseconds and 1 to ignore SIGTERM
// as $1, $2 and $3. It writes, one per line:
//
//	start <fencing token> <mode> <pid> <time>
//	bg <pid of a background subshell that runs until killed>
//	hb <time>                                 every 50 ms
//	end <time>                                when it ran to its end
//
// Times are bash's $EPOCHREALTIME (seconds.microseconds).
const Script = `f=$1; dur=$2
[ "$3" = 1 ] && trap '' TERM
echo "start $REPOLOCK_FENCING_TOKEN $REPOLOCK_MODE $$ $EPOCHREALTIME" >> "$f"
( while :; do sleep 0.2; done ) &
echo "bg $!" >> "$f"
stop=$(( ${EPOCHREALTIME/./} + dur * 1000 ))
while [ "${EPOCHREALTIME/./}" -lt "$stop" ]; do echo "hb $EPOCHREALTIME" >> "$f"; sleep 0.05; done
echo "end $EPOCHREALTIME" >> "$f"
`

// Record is one run: what the harness knows of the repolock process, and
// what its command wrote.
type Record struct {
	ID   int
	Key  string
	Mode string // as asked on the command line
	// Slots is the cap asked with -slots (a semaphore key), 0 for none.
	Slots int

	Exit   int  // repolock's exit code; meaningless when Killed
	Killed bool // the soak SIGKILLed repolock itself

	// When the harness started repolock, and saw it exit: they bound the
	// grant and the release for the Porcupine check, which, unlike Check,
	// needs the whole time each operation may have happened in.
	Requested, Exited time.Time

	Started   bool   // the command wrote its start line: the lock was granted
	Token     uint64 // the fencing token the command saw
	First     time.Time
	Last      time.Time // the last line the command wrote
	Completed bool      // the command wrote its end line
	Pids      []int     // the command and its background subshell
}

// ParseHeartbeats fills the command's side of r from its heartbeat file. A
// last line cut by SIGKILL is ignored.
func ParseHeartbeats(r *Record, data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var at time.Time
		if ts := timeField(f); ts != "" {
			t, ok := parseEpoch(ts)
			if !ok {
				continue // cut short
			}
			at = t
		}
		switch {
		case f[0] == "start" && len(f) == 5:
			tok, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return fmt.Errorf("run %d: bad fencing token %q", r.ID, f[1])
			}
			if f[2] != r.Mode {
				return fmt.Errorf("run %d: asked for mode %s, command saw %s", r.ID, r.Mode, f[2])
			}
			r.Started, r.Token, r.First = true, tok, at
			r.Pids = append(r.Pids, atoi(f[3]))
		case f[0] == "bg" && len(f) == 2:
			r.Pids = append(r.Pids, atoi(f[1]))
		case f[0] == "end" && len(f) == 2:
			r.Completed = true
		}
		if !at.IsZero() && at.After(r.Last) {
			r.Last = at
		}
	}
	return sc.Err()
}

func timeField(f []string) string {
	switch f[0] {
	case "start":
		if len(f) == 5 {
			return f[4]
		}
	case "hb", "end":
		if len(f) == 2 {
			return f[1]
		}
	}
	return ""
}

// parseEpoch reads seconds.microseconds; a line cut short fails.
func parseEpoch(s string) (time.Time, bool) {
	sec, usec, ok := strings.Cut(s, ".")
	if !ok || len(usec) != 6 {
		return time.Time{}, false
	}
	a, err1 := strconv.ParseInt(sec, 10, 64)
	b, err2 := strconv.ParseInt(usec, 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, false
	}
	return time.Unix(a, b*1000), true
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// Honest are the exit codes a run may end with in the soak: the command's
// own 0, or one of repolock's documented outcomes of a fault.
var Honest = map[int]string{
	exitcode.OK:          "0 ran to its end",
	exitcode.Unreachable: "69 Consul unreachable",
	exitcode.Unknown:     "70 guard died",
	exitcode.Busy:        "75 not granted within wait",
	exitcode.LockLost:    "76 lock lost, command stopped",
}

// Violation is one broken guarantee.
type Violation struct {
	Kind   string // overlap, token, dishonest exit, exit code; porcupine from the tests' second check
	Detail string
}

// Check returns every broken guarantee among the runs:
//   - overlap: an exclusive run's heartbeats overlap another run's on its key;
//   - token: a run that ended before another began on its key, one of them
//     exclusive, has a fencing token that is not smaller (grants follow
//     the tokens; two shared holders may start their commands in either
//     order);
//   - over-admission: more runs of a semaphore key hold it at once than
//     the smallest -slots among them allows;
//   - dishonest exit: exit 0 from a run whose command did not run to its end;
//   - exit code: an exit code that is not one of Honest.
func Check(recs []Record) []Violation {
	var out []Violation
	byKey := map[string][]Record{}
	for _, r := range recs {
		if !r.Killed {
			if _, ok := Honest[r.Exit]; !ok {
				out = append(out, Violation{"exit code", fmt.Sprintf("run %d exited %d", r.ID, r.Exit)})
			}
			if r.Exit == 0 && !r.Completed {
				out = append(out, Violation{"dishonest exit", fmt.Sprintf("run %d exited 0, but its command did not run to its end", r.ID)})
			}
		}
		if r.Started {
			byKey[r.Key] = append(byKey[r.Key], r)
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, checkKey(byKey[k])...)
	}
	return out
}

// checkKey compares every pair of granted runs on one key, and counts the
// holders of a semaphore key.
func checkKey(rs []Record) []Violation {
	sort.Slice(rs, func(i, j int) bool { return rs[i].First.Before(rs[j].First) })
	var out []Violation
	if v, ok := overAdmitted(rs); ok {
		out = append(out, v)
	}
	for i, a := range rs {
		for _, b := range rs[i+1:] {
			// b began at or after a did.
			overlap := !b.First.After(a.Last)
			if overlap && (a.Mode == "exclusive" || b.Mode == "exclusive") {
				out = append(out, Violation{"overlap", fmt.Sprintf("key %s: run %d (%s, last heartbeat %s) and run %d (%s, first %s)",
					a.Key, a.ID, a.Mode, a.Last.Format(stamp), b.ID, b.Mode, b.First.Format(stamp))})
			}
			// Heartbeats order the grants only where one of the two is
			// exclusive: a shared holder granted first may start its
			// command after a later shared holder has ended.
			exclusive := a.Mode == "exclusive" || b.Mode == "exclusive"
			if exclusive && !overlap && b.Token <= a.Token {
				out = append(out, Violation{"token", fmt.Sprintf("key %s: run %d (%s, token %d) ended before run %d (%s, token %d) began",
					a.Key, a.ID, a.Mode, a.Token, b.ID, b.Mode, b.Token)})
			}
		}
	}
	return out
}

// overAdmitted finds the first moment when more runs of one key held it
// than the smallest -slots among the key's runs (rs sorted by First).
func overAdmitted(rs []Record) (Violation, bool) {
	least := 0
	for _, r := range rs {
		if r.Slots > 0 && (least == 0 || r.Slots < least) {
			least = r.Slots
		}
	}
	if least == 0 {
		return Violation{}, false
	}
	for i, r := range rs {
		n := 1 // r and the runs that began before it and were still running
		for _, o := range rs[:i] {
			if !r.First.After(o.Last) {
				n++
			}
		}
		if n > least {
			return Violation{"over-admission", fmt.Sprintf("key %s: %d runs held it at %s, run %d the last to begin; the smallest -slots is %d",
				r.Key, n, r.First.Format(stamp), r.ID, least)}, true
		}
	}
	return Violation{}, false
}

const stamp = "15:04:05.000000"
