// Package history keeps the record of each lock key's last finished run,
// the JSON at <prefix>/repos/<key>/last beside the key's lock entries: what
// `repolock status`, consul-template and the stale check read. A record is
// informational: nothing in it decides a grant.
package history

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/plugin"
)

// leaf is the record's name in the key's KV folder.
const leaf = "last"

// Run is the JSON at <prefix>/repos/<key>/last: the last finished run,
// for `repolock status` and consul-template.
type Run struct {
	Job      string            `json:"job,omitempty"`
	Mode     consullock.Mode   `json:"mode"`
	Exit     int               `json:"exit"`
	Class    string            `json:"class"`
	Started  time.Time         `json:"started"`
	Ended    time.Time         `json:"ended"`
	Holder   consullock.Holder `json:"holder"`
	Token    uint64            `json:"fencing_token"`
	Session  string            `json:"session"`
	LockLost bool              `json:"lock_lost,omitempty"`
	// InterruptedBy names the stop signal repolock forwarded to the command
	// (from Nomad, systemd, an operator): the run did not end on its own.
	InterruptedBy string `json:"interrupted_by,omitempty"`
	// Attempts is 2 when the command ran a second time after repolock
	// healed a "native lock busy" exit.
	Attempts int `json:"attempts,omitempty"`
	// NativeLocksCleared are the backup tool's own locks repolock removed
	// during this run, under an exclusive grant.
	NativeLocksCleared []plugin.NativeLock `json:"native_locks_cleared"`
	// Notes are choices repolock made for the run, e.g. a kill_timeout
	// shortened to fit Nomad's.
	Notes []string `json:"notes"`
	// LastSuccess is when each job of this key last succeeded (by job
	// name; "" for repolock exec), carried from record to record, so that
	// a failure does not hide how old the last good backup is.
	LastSuccess map[string]time.Time `json:"last_success,omitempty"`
}

// Write records a finished run, carrying the previous record's
// LastSuccess and adding this run's when it succeeded (exit 0). It is
// informational: callers log a failure and go on.
//
// Shared holders of a key end together, so the record is updated with a
// compare-and-set on its ModifyIndex, retried, and no job's success is
// lost. A record of a later grant (a higher fencing token) is never
// replaced by an earlier grant's, such as a fenced holder's late write:
// only this run's success is merged into it. A success time in the future
// (forged, or a clock far off) is implausible and not carried forward.
func Write(ctx context.Context, c *api.Client, prefix, key string, run Run) error {
	path := consullock.RepoPrefix(prefix, key) + leaf
	for attempt := 0; ; attempt++ {
		p, _, err := c.KV().Get(path, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
		if err != nil {
			return consullock.Classify("read last run", "key:read on "+path, err)
		}
		var prev *Run
		var index uint64
		if p != nil {
			index = p.ModifyIndex
			var r Run
			if json.Unmarshal(p.Value, &r) == nil {
				prev = &r
			}
		}
		val, err := json.Marshal(merge(prev, run, time.Now()))
		if err != nil {
			return err
		}
		ok, _, err := c.KV().CAS(&api.KVPair{Key: path, Value: val, ModifyIndex: index}, (&api.WriteOptions{}).WithContext(ctx))
		if err != nil {
			return consullock.Classify("write last run", "key:write on "+path, err)
		}
		if ok {
			return nil
		}
		if attempt >= casAttempts {
			return fmt.Errorf("write last run %s: changed under %d compare-and-set attempts", path, casAttempts)
		}
	}
}

// casAttempts bounds Write's retries; each is lost only to another write
// of the same record, and shared holders of one key are few.
const casAttempts = 20

// Skew is how far in the future a recorded time may lie before it is
// implausible: clocks of hosts disagree by seconds, not minutes.
const Skew = 5 * time.Minute

// Implausible reports whether t lies further in the future than Skew.
func Implausible(t, now time.Time) bool { return t.After(now.Add(Skew)) }

// merge is the record to write over prev (nil: none or unreadable) for run.
func merge(prev *Run, run Run, now time.Time) Run {
	success := map[string]time.Time{}
	if prev != nil {
		for job, t := range prev.LastSuccess {
			if !Implausible(t, now) {
				success[job] = t
			}
		}
	}
	if run.Exit == 0 { // only a success ends with 0 (run.Of)
		if t, ok := success[run.Job]; !ok || run.Ended.After(t) {
			success[run.Job] = run.Ended
		}
	}
	out := run
	if prev != nil && prev.Token > run.Token {
		out = *prev // a later grant's record stands
	}
	out.LastSuccess = success
	if len(success) == 0 {
		out.LastSuccess = nil
	}
	// Lists are [] when empty, never null, for consul-template and jq.
	out.NativeLocksCleared = append([]plugin.NativeLock{}, out.NativeLocksCleared...)
	out.Notes = append([]string{}, out.Notes...)
	return out
}

// Read returns the last records under prefix by lock key (only key's, when
// key is not ""), with one consistent read. A record that does not parse
// is left out: it is data anyone with the prefix's token may have written.
func Read(ctx context.Context, c *api.Client, prefix, key string) (map[string]*Run, error) {
	root := consullock.RepoPrefix(prefix, "")
	folder := root
	if key != "" {
		folder = consullock.RepoPrefix(prefix, key)
	}
	pairs, _, err := c.KV().List(folder, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, consullock.Classify("read "+folder, "key:read on "+root, err)
	}
	out := map[string]*Run{}
	for _, p := range pairs {
		k, sub, ok := strings.Cut(strings.TrimPrefix(p.Key, root), "/")
		var r Run
		if ok && sub == leaf && json.Unmarshal(p.Value, &r) == nil {
			out[k] = &r
		}
	}
	return out, nil
}
