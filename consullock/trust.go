package consullock

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// What decides a grant is what Consul guarantees, never what a value in
// KV says: a plain KV write (an operator's `consul kv put`, a cleanup
// script, any token with write on the prefix) can rewrite, release or
// delete an entry, but it cannot create, rename or revive a session.
//
//   - A contender's own mode is its own setting (Config.Mode).
//   - Another contender's mode and key are its session's name, fixed when
//     Consul created the session (sessionName). A value whose mode
//     disagrees is tampering: the entry counts as exclusive.
//   - An entry counts only when its name is its session's ID, and that
//     session is named for this key: anything else under the folder was
//     not written by a contender of the key.
//   - A session named for this key that has no live entry is a contender
//     whose entry was deleted or released behind its back, or one about to
//     write its entry. It holds back every grant until it has an entry or
//     is gone: a holder whose entry vanished keeps renewing its session
//     until its command's group is dead, and only then destroys it.

// sessionName is the name of a contender's session for key in mode.
func sessionName(key string, mode Mode) string {
	return sessionPrefix + string(mode) + " " + key
}

const sessionPrefix = "repolock "

// parseSessionName is sessionName's inverse; ok is false for a session
// that is not a contender's. A session of an earlier repolock ("repolock
// <key>") names its key but not its mode: it counts as exclusive.
func parseSessionName(name string) (key string, mode Mode, ok bool) {
	rest, found := strings.CutPrefix(name, sessionPrefix)
	if !found {
		return "", "", false
	}
	m, k, two := strings.Cut(rest, " ")
	if !two {
		return rest, Exclusive, CheckKey(rest) == nil
	}
	mode, err := ParseMode(m)
	if err != nil || CheckKey(k) != nil {
		return "", "", false
	}
	return k, mode, true
}

// sessionID matches the IDs Consul gives sessions (a UUID).
var sessionID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// entryName reports whether an entry's key ends in its session's ID, as
// every contender writes it; other entries are not a contender's.
func entryName(key, session string) bool {
	name := path.Base(key)
	return name == session && sessionID.MatchString(name) && strings.HasSuffix(key, "/lock/"+name)
}

// listing is one read of the datacenter's sessions.
type listing struct {
	sessions []*api.SessionEntry
	index    uint64 // for a blocking wait
}

// listSessions reads the sessions through waitGrant's read (its retries,
// its deadline, its loss check) and remembers their names: a session's
// name never changes, so each is read once (l.named).
func (l *Lock) listSessions(wctx, ctx context.Context, deadline time.Time) (*listing, error) {
	var sessions []*api.SessionEntry
	meta, err := l.read(wctx, ctx, deadline, "list sessions", fmt.Sprintf("session:read on node %q", SessionNode(l.cfg.Node)),
		func(opts *api.QueryOptions) (*api.QueryMeta, error) {
			var err error
			var m *api.QueryMeta
			sessions, m, err = l.sessions.List(opts)
			return m, err
		}, 0)
	if err != nil {
		return nil, err
	}
	if l.named == nil {
		l.named = map[string]string{}
	}
	for _, s := range sessions {
		l.named[s.ID] = s.Name
	}
	return &listing{sessions: sessions, index: meta.LastIndex}, nil
}

// unnamed reports whether an entry ahead has a session whose name is not
// known yet.
func (l *Lock) unnamed(ahead []Record) bool {
	for _, r := range ahead {
		if _, ok := l.named[r.Session]; !ok {
			return true
		}
	}
	return false
}

// trustAhead is the entries ahead as their sessions say (named: ID to
// name): entries of sessions that are not contenders of key dropped, a
// mode that disagrees with the session's counted as exclusive. An entry
// whose session is not named (not listed: ended since, or hidden from
// the token by its ACLs) counts as exclusive: never grant past what
// cannot be checked.
func trustAhead(key string, named map[string]string, ahead []Record, warn func(string, ...any)) []Record {
	out := make([]Record, 0, len(ahead))
	for _, r := range ahead {
		name, ok := named[r.Session]
		if !ok {
			r.Mode = Exclusive
			out = append(out, r)
			continue
		}
		k, mode, ok := parseSessionName(name)
		if !ok || k != key {
			warn("ignoring a lock entry held by a session that is not a contender of this key", "entry", r.key, "session", r.Session, "session_name", Escape(name))
			continue
		}
		if r.Mode != mode {
			warn("lock entry's mode was rewritten: counted as exclusive", "entry", r.key, "session_mode", mode, "entry_mode", Escape(string(r.Mode)))
			mode = Exclusive
		}
		r.Mode = mode
		out = append(out, r)
	}
	return out
}

// orphans are the sessions of key's other contenders that have no live
// entry and may be ahead of mine: created before my entry.
func orphans(key, me string, sessions []*api.SessionEntry, live []Record, mine Record) []string {
	entered := make(map[string]bool, len(live))
	for _, r := range live {
		entered[r.Session] = true
	}
	var out []string
	for _, s := range sessions {
		k, _, ok := parseSessionName(s.Name)
		// A session created after my entry writes its entry after mine:
		// it queues behind me whatever it is.
		if !ok || k != key || s.ID == me || entered[s.ID] || s.CreateIndex > mine.CreateIndex {
			continue
		}
		out = append(out, s.ID)
	}
	return out
}

// waitOrphans blocks until the session listing changes (an orphan's
// session destroyed or expired), or for at most a second: an orphan that
// is a contender about to write its entry changes only KV.
//
// The listing covers every session of the datacenter, so other keys'
// sessions, Nomad's and Vault's wake it too: it returns no sooner than
// RetryDelay, which bounds the reads of a waiter behind an orphan.
func (l *Lock) waitOrphans(ctx context.Context, t *listing, deadline time.Time) {
	began := time.Now()
	wait := min(max(time.Until(deadline), time.Millisecond), time.Second)
	rctx, cancel := context.WithTimeout(ctx, wait+wait/16+l.requestTimeout())
	defer cancel()
	_, _, _ = l.sessions.List((&api.QueryOptions{WaitIndex: t.index, WaitTime: wait}).WithContext(rctx))
	select {
	case <-ctx.Done():
	case <-time.After(l.cfg.Tuning.RetryDelay - time.Since(began)):
	}
}

// Escape makes text read from KV safe to print on one line: control
// characters (escape sequences, newlines) are shown as Go escapes.
func Escape(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\uFFFD' }) < 0 {
		return s
	}
	q := fmt.Sprintf("%q", s)
	return q[1 : len(q)-1]
}
