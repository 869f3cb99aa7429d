package consullock

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"
)

func TestSessionName(t *testing.T) {
	for _, c := range []struct {
		name  string
		key   string
		mode  Mode
		slots int
		ok    bool
	}{
		{sessionName("photos", Shared, 0), "photos", Shared, 0, true},
		{sessionName("photos", Exclusive, 0), "photos", Exclusive, 0, true},
		{sessionName("photos", Shared, 3), "photos", Shared, 3, true},
		{"repolock shared/3 photos", "photos", Shared, 3, true},
		{"repolock photos", "photos", Exclusive, 0, true}, // an earlier repolock's: its mode is unknown
		{"repolock shared ../x", "", "", 0, false},
		{"repolock sometimes photos", "", "", 0, false},
		{"repolock exclusive/3 photos", "", "", 0, false},
		{"repolock shared/0 photos", "", "", 0, false},
		{"repolock shared/03 photos", "", "", 0, false},
		{"repolock shared/-1 photos", "", "", 0, false},
		{"repolock shared/x photos", "", "", 0, false},
		{"consul lock photos", "", "", 0, false},
		{"", "", "", 0, false},
	} {
		key, mode, slots, ok := parseSessionName(c.name)
		if key != c.key || mode != c.mode || slots != c.slots || ok != c.ok {
			t.Errorf("parseSessionName(%q) = %q, %q, %d, %t; want %q, %q, %d, %t", c.name, key, mode, slots, ok, c.key, c.mode, c.slots, c.ok)
		}
	}
}

func TestEntryName(t *testing.T) {
	id := "0f663746-c183-4ffc-c901-107753882cce"
	for key, want := range map[string]bool{
		"repolock/repos/k/lock/" + id:                                    true,
		"repolock/repos/k/lock/..":                                       false,
		"repolock/repos/k/lock/" + id + "x":                              false,
		"repolock/repos/k/" + id:                                         false,
		"repolock/repos/k/lock/1f663746-c183-4ffc-c901-107753882cce":     false, // another session's name
		"repolock/repos/k/lock/0F663746-C183-4FFC-C901-107753882CCE":     false,
		"repolock/repos/k/lock/sub/0f663746-c183-4ffc-c901-107753882cce": false,
	} {
		if got := entryName(key, id); got != want {
			t.Errorf("entryName(%q) = %t, want %t", key, got, want)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"web-1":                     "web-1",
		"host\x1b[2K\rroot@evil":    `host\x1b[2K\rroot@evil`,
		"two\nlines":                `two\nlines`,
		"ünïcode":                   "ünïcode",
		"bad utf8 \xff":             `bad utf8 \xff`,
		"c1 control \u0085 between": `c1 control \u0085 between`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzGrantRule feeds the grant rule arbitrary listings of entries (names,
// sessions, values, indexes) and sessions (names, indexes), and checks it
// against Consul's facts alone: when it grants, no live session of another
// contender of the key created before mine conflicts with my mode, whatever
// the entries say; and no entry older than my session (so of an older
// session, listed or not) is passed over unless its session is a
// compatible contender or not a contender of the key.
func FuzzGrantRule(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("exclusive holder released by a kv write"))
	f.Add([]byte{1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 2, 3, 3, 3, 3, 250, 7, 9, 13})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		const key = "k"
		ids := []string{
			"00000000-0000-4000-8000-000000000000", "11111111-1111-4111-8111-111111111111",
			"22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333",
			"44444444-4444-4444-8444-444444444444",
		}
		me := ids[0]
		myMode := []Mode{Shared, Exclusive}[next()%2]
		mySlots := 0
		if myMode == Shared {
			mySlots = next() % 4
		}
		folder := RepoPrefix("", key) + "lock/"
		var sessions []*api.SessionEntry
		hidden := map[string]bool{} // alive, but not in the listing (ACLs)
		for i, id := range ids {
			if i > 0 && next()%4 == 0 {
				continue // destroyed
			}
			name := []string{sessionName(key, Shared, 0), sessionName(key, Exclusive, 0), "repolock " + key,
				sessionName("other", Exclusive, 0), "not repolock", sessionName(key, Shared, 1+next()%3)}[next()%6]
			if i == 0 {
				name = sessionName(key, myMode, mySlots)
			}
			s := &api.SessionEntry{ID: id, Name: name, CreateIndex: uint64(next())}
			if i > 0 && next()%6 == 0 {
				hidden[id] = true
			}
			sessions = append(sessions, s)
		}
		mine := sessions[0].CreateIndex
		pairs := api.KVPairs{{Key: folder + me, Session: me, CreateIndex: mine + uint64(next()) + 1,
			Value: []byte(fmt.Sprintf(`{"mode":%q}`, []Mode{Shared, Exclusive}[next()%2]))}}
		for n := next() % 8; n > 0; n-- {
			sess := ids[next()%len(ids)]
			name := []string{sess, "..", ids[next()%len(ids)], "x"}[next()%4]
			if next()%5 == 0 {
				sess = "" // released by a KV write
			}
			value := []string{`{"mode":"shared"}`, `{"mode":"exclusive"}`, `garbage`, `{"mode":"none"}`}[next()%4]
			if slices.ContainsFunc(pairs, func(p *api.KVPair) bool { return p.Key == folder+name }) {
				continue // one entry a key
			}
			pairs = append(pairs, &api.KVPair{Key: folder + name, Session: sess, CreateIndex: uint64(next()), Value: []byte(value)})
		}

		known := map[string]seen{}
		for _, s := range sessions {
			if !hidden[s.ID] {
				known[s.ID] = seen{name: s.Name, index: s.CreateIndex}
			}
		}
		live := liveRecords(pairs, nil)
		slots, _ := slotsInForce(key, known, mySlots)
		if !eligible(myMode, slots, queueAhead(key, known, mine, live, func(string, string, ...any) {})) {
			return
		}
		// Granted. Check Consul's facts: each other session of the key.
		conflicts := func(name string) bool {
			k, mode, _, ok := parseSessionName(name)
			return ok && k == key && (myMode == Exclusive || mode != Shared)
		}
		shared, least := 0, mySlots // older shared contenders; the smallest cap of a live one
		for _, s := range sessions {
			if s.ID == me || hidden[s.ID] {
				continue
			}
			if k, mode, n, ok := parseSessionName(s.Name); ok && k == key {
				if n > 0 && (least == 0 || n < least) {
					least = n
				}
				if mode == Shared && s.CreateIndex < mine {
					shared++
				}
			}
			if s.CreateIndex < mine && conflicts(s.Name) {
				t.Fatalf("granted %s beside session %s (%q, index %d < mine %d):\nsessions %+v\npairs %+v", myMode, s.ID, s.Name, s.CreateIndex, mine, sessions, pairs)
			}
		}
		if myMode == Shared && least > 0 && shared >= least {
			t.Fatalf("granted a slot with %d shared contenders ahead, cap %d:\nsessions %+v", shared, least, sessions)
		}
		// A hidden session's entry older than my session.
		for _, p := range pairs {
			if hidden[p.Session] && entryName(p.Key, p.Session) && p.CreateIndex < mine {
				t.Fatalf("granted %s past entry %s of a session the listing hides, created before mine", myMode, p.Key)
			}
		}
	})
}
