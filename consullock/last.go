package consullock

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/consul/api"
)

// LastRun is the JSON at <prefix>/repos/<key>/last: the last finished run,
// for `repolock status` and consul-template.
type LastRun struct {
	Job      string    `json:"job,omitempty"`
	Mode     Mode      `json:"mode"`
	Exit     int       `json:"exit"`
	Class    string    `json:"class"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	Holder   Holder    `json:"holder"`
	Token    uint64    `json:"fencing_token"`
	Session  string    `json:"session"`
	LockLost bool      `json:"lock_lost,omitempty"`
	// InterruptedBy names the stop signal repolock forwarded to the command
	// (from Nomad, systemd, an operator): the run did not end on its own.
	InterruptedBy string `json:"interrupted_by,omitempty"`
	// Attempts is 2 when the command ran a second time after repolock
	// healed a "native lock busy" exit.
	Attempts int `json:"attempts,omitempty"`
	// NativeLocksCleared are the backup tool's own locks repolock removed
	// during this run, under an exclusive grant.
	NativeLocksCleared []NativeLock `json:"native_locks_cleared,omitempty"`
	// Notes are choices repolock made for the run, e.g. a kill_timeout
	// shortened to fit Nomad's.
	Notes []string `json:"notes,omitempty"`
	// LastSuccess is when each job of this key last succeeded (by job
	// name; "" for repolock exec), carried from record to record, so that
	// a failure does not hide how old the last good backup is.
	LastSuccess map[string]time.Time `json:"last_success,omitempty"`
}

// NativeLock is one of a backup tool's own repository locks, as the tool
// describes it; what repolock records when it removes one.
type NativeLock struct {
	ID        string    `json:"id"`
	Host      string    `json:"host,omitempty"`
	User      string    `json:"user,omitempty"`
	PID       int       `json:"pid,omitempty"`
	Time      time.Time `json:"time,omitzero"`
	Exclusive bool      `json:"exclusive"`
}

// String describes the lock for a log line.
func (n NativeLock) String() string {
	kind := "shared"
	if n.Exclusive {
		kind = "exclusive"
	}
	s := fmt.Sprintf("%s %s", kind, n.ID)
	if n.Host != "" {
		s += fmt.Sprintf(" of pid %d on %s", n.PID, n.Host)
	}
	if !n.Time.IsZero() {
		s += fmt.Sprintf(", age %s", time.Since(n.Time).Round(time.Second))
	}
	return s
}

// WriteLast records a finished run, carrying the previous record's
// LastSuccess and adding this run's when success is set. It is
// informational: callers log a failure and go on.
func WriteLast(ctx context.Context, c *api.Client, prefix, key string, run LastRun, success bool) error {
	path := RepoPrefix(prefix, key) + "last"
	if p, _, err := c.KV().Get(path, (&api.QueryOptions{}).WithContext(ctx)); err == nil && p != nil {
		var prev LastRun
		if json.Unmarshal(p.Value, &prev) == nil {
			run.LastSuccess = prev.LastSuccess
		}
	}
	if success {
		run.LastSuccess = maps.Clone(run.LastSuccess)
		if run.LastSuccess == nil {
			run.LastSuccess = map[string]time.Time{}
		}
		run.LastSuccess[run.Job] = run.Ended
	}
	val, err := json.Marshal(run)
	if err != nil {
		return err
	}
	_, err = c.KV().Put(&api.KVPair{Key: path, Value: val},
		(&api.WriteOptions{}).WithContext(ctx))
	return classify("write last run", "key:write", err)
}
