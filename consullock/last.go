package consullock

import (
	"context"
	"encoding/json"
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
}

// WriteLast records a finished run. It is informational: callers log a
// failure and go on.
func WriteLast(ctx context.Context, c *api.Client, prefix, key string, run LastRun) error {
	val, err := json.Marshal(run)
	if err != nil {
		return err
	}
	_, err = c.KV().Put(&api.KVPair{Key: RepoPrefix(prefix, key) + "last", Value: val},
		(&api.WriteOptions{}).WithContext(ctx))
	return classify("write last run", "key:write", err)
}
