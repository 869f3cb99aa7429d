package consullock

import (
	"context"
	"sort"
	"strings"

	"github.com/hashicorp/consul/api"
)

// RepoStatus is what KV says about one lock key: its live contenders in
// grant order (holders first); an empty list when the key has none.
type RepoStatus struct {
	Key     string   `json:"key"`
	Entries []Record `json:"entries"`
}

// Status reads every key under prefix that has live contenders (or only
// key, when not empty) with one consistent read. hidden says that Consul
// left out entries the token may not read (a per-repository token).
func Status(ctx context.Context, c *api.Client, prefix, key string) (repos []RepoStatus, hidden bool, err error) {
	root := RepoPrefix(prefix, "")
	folder := root
	if key != "" {
		folder = RepoPrefix(prefix, key)
	}
	pairs, meta, err := c.KV().List(folder, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, false, classify("read "+folder, "key:read on "+root, err)
	}
	byKey := map[string]api.KVPairs{}
	for _, p := range pairs {
		k, sub, ok := strings.Cut(strings.TrimPrefix(p.Key, root), "/")
		if ok && strings.HasPrefix(sub, "lock/") {
			byKey[k] = append(byKey[k], p)
		}
	}
	out := make([]RepoStatus, 0, len(byKey))
	for k, ps := range byKey {
		out = append(out, RepoStatus{Key: k, Entries: liveRecords(ps)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, meta.ResultsFilteredByACLs, nil
}

// Break destroys the session of every live contender of key — holders and
// waiters — and returns what it destroyed. It is the operator's forceful
// escape hatch: a holder's command is stopped by its own repolock (exit 76),
// but a competitor may be granted the lock before that command has died.
func Break(ctx context.Context, c *api.Client, prefix, key string) ([]Record, error) {
	repos, _, err := Status(ctx, c, prefix, key)
	if err != nil {
		return nil, err
	}
	var done []Record
	for _, r := range repos {
		// Newest first: destroying a holder first would grant the lock to
		// a waiter that is about to be destroyed too.
		for i := len(r.Entries) - 1; i >= 0; i-- {
			e := r.Entries[i]
			if _, err := c.Session().Destroy(e.Session, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
				return done, classify("destroy session "+e.Session, "session:write", err)
			}
			done = append(done, e)
		}
	}
	return done, nil
}
