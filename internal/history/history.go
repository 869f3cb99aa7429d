// Package history keeps the record of each lock key's last finished run,
// the JSON at <prefix>/repos/<key>/last beside the key's lock entries: what
// `repolock status`, consul-template and the stale check read. A record is
// informational: nothing in it decides a grant.
package history

import (
	"context"
	"encoding/json"
	"maps"
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
func Write(ctx context.Context, c *api.Client, prefix, key string, run Run) error {
	path := consullock.RepoPrefix(prefix, key) + leaf
	if p, _, err := c.KV().Get(path, (&api.QueryOptions{}).WithContext(ctx)); err == nil && p != nil {
		var prev Run
		if json.Unmarshal(p.Value, &prev) == nil {
			run.LastSuccess = prev.LastSuccess
		}
	}
	if run.Exit == 0 { // only a success ends with 0 (run.Of)
		run.LastSuccess = maps.Clone(run.LastSuccess)
		if run.LastSuccess == nil {
			run.LastSuccess = map[string]time.Time{}
		}
		run.LastSuccess[run.Job] = run.Ended
	}
	// Lists are [] when empty, never null, for consul-template and jq.
	run.NativeLocksCleared = append([]plugin.NativeLock{}, run.NativeLocksCleared...)
	run.Notes = append([]string{}, run.Notes...)
	val, err := json.Marshal(run)
	if err != nil {
		return err
	}
	_, err = c.KV().Put(&api.KVPair{Key: path, Value: val},
		(&api.WriteOptions{}).WithContext(ctx))
	return consullock.Classify("write last run", "key:write on "+path, err)
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
