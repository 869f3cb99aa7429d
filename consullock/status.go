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
	return folderStatus(ctx, c, root, folder)
}

// LimitStatus is Status for the keys of limits (<prefix>/limits/): their
// slot holders and waiters.
func LimitStatus(ctx context.Context, c *api.Client, prefix string) (limits []RepoStatus, hidden bool, err error) {
	root := LimitPrefix(prefix, "")
	return folderStatus(ctx, c, root, root)
}

// folderStatus reads the keys of folder, a folder under root or root.
func folderStatus(ctx context.Context, c *api.Client, root, folder string) ([]RepoStatus, bool, error) {
	pairs, meta, err := c.KV().List(folder, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, false, classify("read "+folder, "key:read on "+root, err)
	}
	known, err := sessionOrder(ctx, c)
	if err != nil {
		return nil, false, err
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
		out = append(out, RepoStatus{Key: k, Entries: liveRecords(ps, known)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, meta.ResultsFilteredByACLs, nil
}

// Broken is what Break did.
type Broken struct {
	// Destroyed are the live contenders whose sessions were destroyed,
	// newest first.
	Destroyed []Record
	// Orphans are sessions of the key's contenders that had no live entry
	// (deleted or released by a KV write), destroyed too.
	Orphans []string
	// Removed are entries left with no session (released by a KV write),
	// deleted.
	Removed []string
	// Skipped are entries held by a session that is not a contender of the
	// key (another key's, or not repolock's): left alone.
	Skipped []string
}

// Break destroys the session of every contender of key — holders and
// waiters, with or without an entry — and deletes the entries left with
// no session. It touches no session that is not named for key (trust.go),
// whatever entries under key say. It is the operator's forceful escape
// hatch: a holder's command is stopped by its own repolock (exit 76), but
// a competitor may be granted the lock before that command has died.
func Break(ctx context.Context, c *api.Client, prefix, key string) (Broken, error) {
	var out Broken
	folder := RepoPrefix(prefix, key) + "lock/"
	pairs, _, err := c.KV().List(folder, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return out, classify("read "+folder, "key:read on "+folder, err)
	}
	known, err := sessionOrder(ctx, c)
	if err != nil {
		return out, err
	}
	mine := map[string]bool{}
	for id, s := range known {
		if k, _, _, ok := parseSessionName(s.name); ok && k == key {
			mine[id] = true
		}
	}
	destroy := func(id string) error {
		if _, err := c.Session().Destroy(id, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			return classify("destroy session "+id, "session:write", err)
		}
		delete(mine, id)
		return nil
	}
	live := liveRecords(pairs, known)
	// Newest first: destroying a holder first would grant the lock to a
	// waiter that is about to be destroyed too.
	for i := len(live) - 1; i >= 0; i-- {
		e := live[i]
		switch {
		case known[e.Session] == (seen{}):
			// ended since the entries were read
		case !mine[e.Session]:
			out.Skipped = append(out.Skipped, e.key)
		default:
			if err := destroy(e.Session); err != nil {
				return out, err
			}
			out.Destroyed = append(out.Destroyed, e)
		}
	}
	for id := range mine {
		if err := destroy(id); err != nil {
			return out, err
		}
		out.Orphans = append(out.Orphans, id)
	}
	for _, p := range pairs {
		switch {
		case p.Session != "" && !entryName(p.Key, p.Session):
			out.Skipped = append(out.Skipped, p.Key)
		case p.Session == "":
			// Only if still without a session: a CAS on the index it was read at.
			ok, _, err := c.KV().DeleteCAS(&api.KVPair{Key: p.Key, ModifyIndex: p.ModifyIndex}, (&api.WriteOptions{}).WithContext(ctx))
			if err != nil {
				return out, classify("delete "+p.Key, "key:write on "+folder, err)
			}
			if ok {
				out.Removed = append(out.Removed, p.Key)
			}
		}
	}
	return out, nil
}

// sessionOrder maps the sessions' IDs to their names and CreateIndex: a
// contender's slots, its place in its queue and, holding, its fencing
// token (trust.go). Sessions the token may not read are left out, and
// their holders' tokens unknown.
func sessionOrder(ctx context.Context, c *api.Client) (map[string]seen, error) {
	sessions, _, err := c.Session().List((&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, classify("list sessions", "session:read", err)
	}
	known := make(map[string]seen, len(sessions))
	for _, s := range sessions {
		known[s.ID] = seen{name: s.Name, index: s.CreateIndex}
	}
	return known, nil
}
