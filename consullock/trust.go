package consullock

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// What decides a grant is what Consul guarantees, never what a value in
// KV says: a plain KV write (an operator's `consul kv put`, a cleanup
// script, any token with write on the prefix) can rewrite, release, delete
// or re-create an entry, but it cannot create, rename, reorder or revive a
// session.
//
//   - A contender's place in the queue is its session's CreateIndex: the
//     session is created first, and nothing a KV write does moves it. (An
//     entry's CreateIndex would not do: an entry deleted and acquired again
//     with its holder's session queues behind the waiters that were behind
//     it, while that holder is still stopping its command.)
//   - A contender's own mode is its own setting (Config.Mode). Another
//     contender's mode and key are its session's name, fixed when Consul
//     created the session (sessionName). An entry's value whose mode
//     disagrees is tampering: that contender counts as exclusive.
//   - An entry counts only when its name is its session's ID, and that
//     session is named for this key: anything else under the folder was
//     not written by a contender of the key.
//   - A session named for this key, created before mine, that has no live
//     entry is a contender whose entry was deleted or released behind its
//     back, or one about to write its entry. It holds back every grant it
//     conflicts with until it has an entry or is gone: a holder whose entry
//     vanished keeps renewing its session until its command's group is
//     dead, and only then destroys it.
//   - A store that lost its state (wiped, restored, `kv delete -recurse`)
//     forgot its holders and their sessions. No grant counts until an
//     epoch key under the prefix is found, and the contender that finds it
//     missing waits a ttl before writing it (checkEpoch): by then every
//     holder the store forgot has failed a renewal and stopped.

// sessionName is the name of a contender's session for key (an ident) in
// mode; a shared contender that caps the shared holders at slots (> 0)
// names it: "repolock shared/3 key".
func sessionName(key string, mode Mode, slots int) string {
	m := string(mode)
	if slots > 0 {
		m += "/" + strconv.Itoa(slots)
	}
	return sessionPrefix + m + " " + key
}

const sessionPrefix = "repolock "

// parseSessionName is sessionName's inverse; ok is false for a session
// that is not a contender's. A session of an earlier repolock ("repolock
// <key>") names its key but not its mode: it counts as exclusive.
func parseSessionName(name string) (key string, mode Mode, slots int, ok bool) {
	rest, found := strings.CutPrefix(name, sessionPrefix)
	if !found {
		return "", "", 0, false
	}
	m, k, two := strings.Cut(rest, " ")
	if !two {
		return rest, Exclusive, 0, CheckKey(rest) == nil
	}
	if name, limit := strings.CutPrefix(k, limitIdent); limit {
		if CheckKey(name) != nil {
			return "", "", 0, false
		}
		k = limitIdent + name
	} else if CheckKey(k) != nil {
		return "", "", 0, false
	}
	if m, n, capped := strings.Cut(m, "/"); capped {
		slots, err := strconv.Atoi(n)
		if m != string(Shared) || err != nil || slots < 1 || strconv.Itoa(slots) != n {
			return "", "", 0, false
		}
		return k, Shared, slots, true
	}
	mode, err := ParseMode(m)
	if err != nil {
		return "", "", 0, false
	}
	return k, mode, 0, true
}

// limitIdent starts the identity of a limit's key in its contenders'
// session names ("repolock shared/2 limit nas"): no repository key has a
// space, so a limit and a repository of one name never share a queue.
const limitIdent = "limit "

// ident is the identity of the contenders of c's key in session names.
func (c Config) ident() string {
	if c.Limit {
		return limitIdent + c.Key
	}
	return c.Key
}

// sessionID matches the IDs Consul gives sessions (a UUID).
var sessionID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// entryName reports whether an entry's key ends in its session's ID, as
// every contender writes it; other entries are not a contender's.
func entryName(key, session string) bool {
	name := path.Base(key)
	return name == session && sessionID.MatchString(name) && strings.HasSuffix(key, "/lock/"+name)
}

// seen is what a listing said of a live session that never changes: its
// name and its CreateIndex.
type seen struct {
	name  string
	index uint64
}

// listSessions reads the sessions through waitGrant's read (its retries,
// its deadline, its loss check) and keeps what they say (l.known): the
// sessions alive at the time of the read, this contender's own among them.
func (l *Lock) listSessions(wctx, ctx context.Context, deadline time.Time) error {
	var sessions []*api.SessionEntry
	_, err := l.read(wctx, ctx, deadline, "list sessions", fmt.Sprintf("session:read on node %q", SessionNode(l.cfg.Node)),
		func(opts *api.QueryOptions) (*api.QueryMeta, error) {
			var err error
			var m *api.QueryMeta
			sessions, m, err = l.sessions.List(opts)
			return m, err
		}, 0)
	if err != nil {
		return err
	}
	l.known = make(map[string]seen, len(sessions))
	for _, s := range sessions {
		l.known[s.ID] = seen{name: s.Name, index: s.CreateIndex}
	}
	return nil
}

// queueAhead is the queue in front of the contender of key whose session
// has CreateIndex mine, as Consul's facts say: every session in known
// named for key and created before mine, in CreateIndex order, each as its
// live entry (live, decoded by liveRecords) or, with no entry, as a Record
// with no key. Modes are the sessions' names'. known is a listing read
// after my session was created, so a session it does not name was created
// after mine, or is hidden from the token by its ACLs: an entry of such a
// session counts (as exclusive) only when the entry itself is older than
// my session, which proves its session older too.
func queueAhead(key string, known map[string]seen, mine uint64, live []Record, warn func(entry, msg string, args ...any)) []Record {
	var out []Record
	entered := make(map[string]bool, len(live))
	for _, r := range live {
		entered[r.Session] = true
		s, ok := known[r.Session]
		if !ok {
			if r.CreateIndex < mine {
				r.Mode, r.order = Exclusive, r.CreateIndex
				out = append(out, r)
			}
			continue
		}
		k, mode, slots, ok := parseSessionName(s.name)
		if !ok || k != key {
			warn(r.key, "ignoring a lock entry held by a session that is not a contender of this key", "entry", r.key, "session", r.Session, "session_name", Escape(s.name))
			continue
		}
		if s.index >= mine {
			continue // behind me, or me
		}
		if r.Mode != mode {
			warn(r.key, "lock entry's mode was rewritten: counted as exclusive", "entry", r.key, "session_mode", mode, "entry_mode", Escape(string(r.Mode)))
			mode = Exclusive
		}
		r.Mode, r.Slots, r.order = mode, slots, s.index
		out = append(out, r)
	}
	for id, s := range known {
		k, mode, slots, ok := parseSessionName(s.name)
		if !ok || k != key || s.index >= mine || entered[id] {
			continue
		}
		out = append(out, Record{Session: id, Mode: mode, Slots: slots, State: StateNoEntry, order: s.index})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].order < out[j].order })
	return out
}

// slotsInForce is the cap on key's shared holders: the smallest slots that
// a live contender of key names (own, mine, and known's, ahead or
// behind), 0 when none does. disagree says that they name different caps.
func slotsInForce(key string, known map[string]seen, own int) (slots int, disagree bool) {
	slots = own
	for _, s := range known {
		k, _, n, ok := parseSessionName(s.name)
		if !ok || k != key || n == 0 {
			continue
		}
		if slots != 0 && n != slots {
			disagree = true
		}
		if slots == 0 || n < slots {
			slots = n
		}
	}
	return slots, disagree
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
