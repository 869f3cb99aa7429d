// Package consullock is a fair shared/exclusive lock on Consul sessions and
// KV, which hands back a context cancelled with the reason when the lock can
// no longer be proven.
//
// Each contender creates a session (TTL only, no health checks, behaviour
// "delete") and writes one entry, acquired with that session, under
// <prefix>/repos/<key>/lock/. Contenders are ordered by their sessions'
// CreateIndex, which no KV write can change (trust.go): an exclusive
// contender is granted when it is first among the key's live sessions, a
// shared one when no exclusive session precedes it. Waiters use blocking
// queries. The fencing token is the session's CreateIndex: grants happen in
// that order, so it strictly increases with every grant of a key.
package consullock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/repolock/repolock/internal/clock"
	"github.com/repolock/repolock/internal/latest"
)

// DefaultPrefix is the KV prefix when Config.Prefix is empty.
const DefaultPrefix = "repolock"

// DefaultNode is the catalog node sessions are bound to when Config.Node
// is empty.
const DefaultNode = "repolock"

// SessionNode is the catalog node sessions are bound to for a configured
// node name: the name, or DefaultNode when it is empty.
func SessionNode(name string) string {
	if name == "" {
		return DefaultNode
	}
	return name
}

// Config of one lock acquisition.
type Config struct {
	Client *api.Client
	Prefix string // KV prefix, default DefaultPrefix
	Key    string // lock key, one KV path segment
	// Node is the catalog-only node the session is bound to (registered if
	// missing); default DefaultNode. Never the agent's own node, whose
	// deregistration would invalidate the session behind our back.
	Node string
	// Datacenter is the one the Client's requests name (api.Config's
	// Datacenter), where the locks live; "" for the agent's own. The
	// session node is registered there: Consul's catalog register takes
	// its datacenter from the request body, not from the client's ?dc=.
	Datacenter string
	// SessionClient, if set, registers the session node and creates the
	// session; everything else goes through Client. Consul creates a
	// session in another datacenter only through a server agent
	// (consul#6828), so a client agent's repolock names one here.
	SessionClient *api.Client
	Mode          Mode
	// Slots, if above 0, caps the key's shared holders (Mode Shared): the
	// `consul lock -n` semaphore. The cap in force is the smallest that a
	// live contender of the key names (trust.go).
	Slots int
	// Limit says that Key names a limit (a `limit` block), not a
	// repository: its entries live under LimitPrefix, and its contenders'
	// sessions are named apart from a repository's of the same name.
	Limit  bool
	Lease  Lease
	Tuning Tuning
	// Wait bounds how long Acquire waits for the grant; 0 tries once.
	Wait   time.Duration
	Holder Holder
	Logger hclog.Logger
	// OnRenew, if set, is called with the round trip of every renewal
	// Consul confirmed (a metric: across a WAN it eats the margin). It
	// runs on the renewal goroutine and must not block.
	OnRenew func(rtt time.Duration)
	// OnBusy, if set, is called once when the lock is not granted at once,
	// with the live entries ahead of this contender.
	OnBusy func(ahead []Record)
}

// Lock is a granted lock. Its Context is cancelled, with a cause wrapping
// ErrLost, as soon as the lock can no longer be proven.
type Lock struct {
	cfg      Config
	kv       *api.KV
	sessions *api.Session
	log      hclog.Logger

	session  string
	entryKey string
	token    uint64
	record   Record
	// entryIndex is the CreateIndex of the entry the grant saw.
	entryIndex uint64
	// grantIndex is the Consul index at which the grant saw the entry.
	grantIndex uint64
	// warned are the entries a warning has named, once each.
	warned map[string]bool
	// known are the sessions alive at the last listing, by ID; mine is my
	// own session's CreateIndex, my place in the queue (trust.go).
	known map[string]seen
	mine  uint64
	// epoch says that the epoch key was found (checkEpoch).
	epoch bool
	// written are the values this contender wrote to its entry: any other
	// value there is a KV write's.
	writtenMu sync.Mutex
	written   map[string]bool
	// leftover is the ModifyIndex of this contender's entry released by a
	// KV write: no session deletes it, so Release does.
	leftover atomic.Uint64

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	lastSent clock.Boottime
	lastErr  error // of the last renewal, classified; nil once one succeeds
	leases   *latest.Chan[time.Duration]

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// RepoPrefix returns the KV folder of a key: <prefix>/repos/<key>/.
func RepoPrefix(prefix, key string) string {
	return path.Join(prefixOr(prefix), "repos", key) + "/"
}

// prefixOr is prefix, or DefaultPrefix when it is empty.
func prefixOr(prefix string) string {
	if prefix == "" {
		return DefaultPrefix
	}
	return prefix
}

// LimitPrefix returns the KV folder of a limit's slots:
// <prefix>/limits/<name>/ ("" for the folder of all limits).
func LimitPrefix(prefix, name string) string {
	return path.Join(prefixOr(prefix), "limits", name) + "/"
}

// folder is the KV folder of c's key.
func (c Config) folder() string {
	if c.Limit {
		return LimitPrefix(c.Prefix, c.Key)
	}
	return RepoPrefix(c.Prefix, c.Key)
}

// Acquire creates a session, queues for the lock and returns once it is
// granted, or fails with ErrTimeout (with the holders named), an
// *UnreachableError or a *PermissionError. On failure it leaves nothing
// behind in Consul that it could remove.
func Acquire(ctx context.Context, cfg Config) (*Lock, error) {
	if err := CheckKey(cfg.Key); err != nil {
		return nil, fmt.Errorf("consullock: %w", err)
	}
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		return nil, fmt.Errorf("consullock: %w", err)
	}
	if err := CheckSlots(cfg.Mode, cfg.Slots); err != nil {
		return nil, fmt.Errorf("consullock: %w", err)
	}
	if err := cfg.Lease.model().Validate(); err != nil {
		return nil, fmt.Errorf("consullock: %w", err)
	}
	cfg.Tuning = cfg.Tuning.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	// Waiting is patient: while Consul is unreachable (a leader election,
	// lost quorum, an agent restart) a waiter retries, and when its session
	// lapses it queues again with a new one, until Wait runs out. Only a
	// holder is strict.
	deadline := time.Now().Add(cfg.Wait)
	backoff := cfg.Tuning.RetryDelay
	for {
		try := cfg
		try.Wait = max(time.Until(deadline), 0)
		l, err := acquireOnce(ctx, try)
		if err == nil || !retryable(err) || cfg.Wait == 0 || ctx.Err() != nil {
			return l, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, err
		}
		// Jitter, so that the waiters of a cluster do not all come back in
		// the same instant after an election.
		pause := min(backoff/2+time.Duration(rand.Int64N(int64(backoff))), left)
		why := "Consul unreachable while waiting; this contender lost its place in the queue and queues again"
		if errors.Is(err, ErrLost) && !errors.As(err, new(*UnreachableError)) {
			why = "this contender's session ended while it waited (destroyed, expired, or the lock store lost its state): it queues again with a new session"
		}
		cfg.Logger.Warn(why, "key", cfg.Key, "retry_in", pause.Round(time.Millisecond), "wait_left", left.Round(time.Second), "error", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		backoff = min(2*backoff, max(cfg.Lease.TTL, cfg.Tuning.RetryDelay))
	}
}

// retryable reports whether a failed acquisition may succeed later:
// Consul did not answer, had no leader, or the waiting session ended (no
// renewal got through, a destroy, a store that lost its state): a waiter
// is patient while its wait lasts. A refusal (ACL, or an answer waiting
// cannot change) is final.
func retryable(err error) bool {
	if final(err) {
		return false
	}
	var ue *UnreachableError
	if errors.As(err, &ue) || errors.Is(err, ErrLost) {
		return true
	}
	a := answer(err)
	return a == statusServer || a == statusTooMany
}

// final reports a classified error that no retry can heal: the ACLs
// refused, or Consul answered in a way waiting cannot change.
func final(err error) bool {
	return errors.As(err, new(*PermissionError)) || errors.As(err, new(*RefusedError))
}

// acquireOnce is one session's try: create it, queue, wait for the grant.
func acquireOnce(ctx context.Context, cfg Config) (*Lock, error) {
	l := &Lock{
		cfg:      cfg,
		kv:       cfg.Client.KV(),
		sessions: cfg.Client.Session(),
		log:      cfg.Logger,
		leases:   latest.New[time.Duration](),
		stop:     make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancelCause(context.Background())

	if err := l.createSession(ctx); err != nil {
		return nil, err
	}
	// Renewal and the local deadline run from the start, so a long wait
	// keeps the session alive and a partition while waiting is noticed.
	l.wg.Add(2)
	go l.renewLoop()
	go l.deadlineLoop()

	if err := l.enqueue(ctx); err != nil {
		l.abandon()
		return nil, err
	}
	if err := l.waitGrant(ctx); err != nil {
		l.abandon()
		return nil, err
	}
	// The holder record is written while the caller already starts its
	// command: the grant is decided and the token known, and a waiter
	// handed the lock should not also wait for a write. A failed write
	// means the session is gone, which the loss context reports.
	l.wg.Add(2)
	go l.markHolding()
	go l.watchEntry()
	return l, nil
}

// requestTimeout bounds one Consul request that is not a blocking query, so
// that a frozen agent cannot hold a caller past its deadline.
func (l *Lock) requestTimeout() time.Duration { return l.cfg.Lease.RenewInterval }

// writeTimeout bounds a write, which may take a Raft commit.
func (l *Lock) writeTimeout() time.Duration {
	return max(l.requestTimeout(), l.cfg.Tuning.MinRequestTimeout)
}

// createSession binds the session to a catalog-only node (Config.Node)
// instead of the local agent's: Consul invalidates every session of a node
// when the node is deregistered, which a graceful agent restart
// (leave_on_terminate) does at once, while repolock, cut off from its
// agent, could not notice before its TTL-based deadline. A node registered
// through the catalog, with no serfHealth check, is never reaped.
func (l *Lock) createSession(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, l.writeTimeout())
	defer cancel()
	node := SessionNode(l.cfg.Node)
	via := l.cfg.SessionClient
	if via == nil {
		via = l.cfg.Client
	}
	_, err := via.Catalog().Register(&api.CatalogRegistration{
		Datacenter:     l.cfg.Datacenter,
		Node:           node,
		Address:        "127.0.0.1",
		NodeMeta:       map[string]string{"repolock": "session-node"},
		SkipNodeUpdate: true,
	}, (&api.WriteOptions{}).WithContext(rctx))
	if err != nil {
		return classify("register session node "+node, fmt.Sprintf("node:write on node %q (node %q { policy = \"write\" })", node, node), err)
	}
	sent := clock.Now()
	id, _, err := via.Session().CreateNoChecks(&api.SessionEntry{
		Name:     sessionName(l.cfg.ident(), l.cfg.Mode, l.cfg.Slots),
		Node:     node,
		TTL:      l.cfg.Lease.TTL.String(),
		Behavior: api.SessionBehaviorDelete,
	}, (&api.WriteOptions{}).WithContext(rctx))
	if err != nil {
		return classify("create session", fmt.Sprintf("session:write on node %q (session %q { policy = \"write\" })", node, node),
			refusedSession(node, l.cfg.Datacenter, err))
	}
	l.session = id
	l.entryKey = l.cfg.folder() + "lock/" + id
	l.setLease(sent)
	return nil
}

func (l *Lock) enqueue(ctx context.Context) error {
	l.record = Record{
		Session: l.session,
		Mode:    l.cfg.Mode,
		Slots:   l.cfg.Slots,
		State:   StateWaiting,
		Holder:  l.cfg.Holder,
		Since:   time.Now().UTC().Truncate(time.Millisecond),
	}
	ok, err := l.putRecord(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return lost("session %s was invalidated before its entry could be written", l.session)
	}
	return nil
}

// wrote reports whether val is a value this contender wrote.
func (l *Lock) wrote(val []byte) bool {
	l.writtenMu.Lock()
	defer l.writtenMu.Unlock()
	return l.written[string(val)]
}

func (l *Lock) putRecord(ctx context.Context) (bool, error) {
	val, err := json.Marshal(l.record)
	if err != nil {
		return false, err
	}
	l.writtenMu.Lock()
	if l.written == nil {
		l.written = map[string]bool{}
	}
	l.written[string(val)] = true
	l.writtenMu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, l.writeTimeout())
	defer cancel()
	ok, _, err := l.kv.Acquire(&api.KVPair{Key: l.entryKey, Value: val, Session: l.session},
		(&api.WriteOptions{}).WithContext(rctx))
	if err != nil {
		return false, classify("write lock entry "+l.entryKey, fmt.Sprintf("key:write on %q (key_prefix %q { policy = \"write\" })",
			l.entryKey, l.cfg.folder()), err)
	}
	return ok, nil
}

// waitGrant waits until this contender is eligible. It reads the key's
// folder once per wake-up and blocks on the one live entry it waits behind
// (blocker), never on the whole folder: a grant, a holder record or a
// release wakes only the contender right behind it, so N queued contenders
// cost O(N) reads in all, not O(N²) (the ZooKeeper lock recipe, adapted to
// shared and exclusive contenders). The queue is the sessions' (trust.go):
// it lists them once after its own was created, and again only when the
// contender it waits behind has no entry (a release, or a KV write).
func (l *Lock) waitGrant(ctx context.Context) error {
	deadline := time.Now().Add(l.cfg.Wait)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A loss of the session while waiting ends the wait at once.
	stopOnLoss := context.AfterFunc(l.ctx, cancel)
	defer stopOnLoss()

	folder := l.cfg.folder() + "lock/"
	reported := false
	var since uint64             // block on the folder from this index (see below),
	var folderWait time.Duration // for at most this long
	var noEntry string           // the session without an entry waited for last
	relistNext := false          // list the sessions on the next wake-up (a slot's first waiter)
	for {
		var pairs api.KVPairs
		meta, err := l.read(wctx, ctx, deadline, "read lock entries", fmt.Sprintf("key:read on %q", folder), func(opts *api.QueryOptions) (*api.QueryMeta, error) {
			opts.WaitTime = min(opts.WaitTime, folderWait)
			var err error
			var m *api.QueryMeta
			pairs, m, err = l.kv.List(folder, opts)
			return m, err
		}, since)
		if err != nil {
			return err
		}
		since = 0
		relist := relistNext
		relistNext = false
		live := liveRecords(pairs, nil)
		l.warnIgnored(pairs)
		mine, ok := find(live, l.session)
		if !ok {
			// Deleted or released by a KV write, or gone with the session:
			// write it again. The place in the queue is the session's, so
			// it is kept; a session that is gone refuses the write.
			l.log.Warn("own lock entry vanished while waiting (a KV write, or the session ended): writing it again", "key", l.cfg.ident(), "entry", l.entryKey)
			if err := l.enqueue(wctx); err != nil {
				if l.ctx.Err() != nil {
					return l.lossWhileWaiting()
				}
				return err
			}
			continue
		}
		listed := false
		if l.mine == 0 {
			if err := l.listed(wctx, ctx, deadline); err != nil {
				return err
			}
			listed = true
			if err := l.readEpoch(wctx, ctx, deadline); err != nil {
				return err
			}
		}
		ahead := queueAhead(l.cfg.ident(), l.known, l.mine, live, l.warnOnce)
		if !listed && (relist || l.stale(ahead)) {
			if err := l.listed(wctx, ctx, deadline); err != nil {
				return err
			}
			ahead = queueAhead(l.cfg.ident(), l.known, l.mine, live, l.warnOnce)
		}
		slots, disagree := slotsInForce(l.cfg.ident(), l.known, l.cfg.Slots)
		if disagree {
			l.warnOnce("slots", "contenders of this key ask for different numbers of slots: the smallest is in force", "key", l.cfg.ident(), "slots", slots)
		}
		b, byCount, blocked := blocker(l.cfg.Mode, slots, ahead)
		if !blocked {
			if !l.epoch {
				waited, err := l.checkEpoch(wctx, ctx, deadline)
				if err != nil {
					return err
				}
				if waited {
					// The queue as it is after the wait, sessions too: a
					// ttl-old listing would miss a cap that came meanwhile.
					l.mine = 0
					continue
				}
			}
			l.token = l.mine
			l.entryIndex = mine.CreateIndex
			l.grantIndex = meta.LastIndex
			return nil
		}
		if !reported && l.cfg.OnBusy != nil {
			l.cfg.OnBusy(ahead)
		}
		reported = true
		if time.Now().After(deadline) || l.cfg.Wait == 0 {
			return l.timeout(ahead)
		}
		if byCount && b.key != "" && b.State == StateHolding {
			// The first waiter for a slot: any holder's release frees one,
			// so it blocks on the folder (for a ttl at most). Every other
			// waiter watches the contender right ahead of it, as below:
			// one folder watcher per key, whatever the queue.
			// Its wake-ups list the sessions again: the cap in force may
			// have come from a contender since gone (behind it, with no
			// entry ahead to tell).
			since, folderWait, relistNext = meta.LastIndex, l.cfg.Lease.TTL, true
			continue
		}
		if b.key == "" {
			// A contender about to write its entry (its session is older
			// than mine, its entry not written yet), or one whose entry a
			// KV write deleted. Block on the folder, for at most a second:
			// the entry written wakes it; a session that ends changes no
			// KV, and the next listing sees it. The first writes its entry
			// within a round trip, so only one still without an entry
			// after a wait is worth a warning.
			if b.Session == noEntry {
				l.warnOnce(b.Session, "a contender of this key has a session but no lock entry (deleted or released by a KV write): waiting until its session ends or its entry is back",
					"key", l.cfg.ident(), "session", b.Session)
			}
			noEntry = b.Session
			since, folderWait = meta.LastIndex, time.Second
			continue
		}
		// Block until the blocker's entry changes (a holder record) or
		// goes (its session ended); then look at the queue again. The
		// wait ends after a ttl at the latest, when the folder is read
		// again: a KV write that deleted my own entry wakes nobody.
		if _, err := l.read(wctx, ctx, deadline, "watch lock entry "+b.key, fmt.Sprintf("key:read on %q", folder), func(opts *api.QueryOptions) (*api.QueryMeta, error) {
			_, m, err := l.kv.Get(b.key, opts)
			return m, err
		}, b.modifyIndex); err != nil {
			return err
		}
	}
}

// stale reports whether the queue ahead, as the last listing saw it, may
// have changed in a way only a new listing shows: the contender waited
// behind has no entry (released, or deleted by a KV write while its
// session lives); waiting for a slot, any contender ahead has none; or a
// grant under a cap, which takes the caps of the contenders live now.
func (l *Lock) stale(ahead []Record) bool {
	slots, _ := slotsInForce(l.cfg.ident(), l.known, l.cfg.Slots)
	b, byCount, blocked := blocker(l.cfg.Mode, slots, ahead)
	switch {
	case !blocked:
		return slots > 0
	case b.key == "":
		return true
	default:
		return byCount && slices.ContainsFunc(ahead, func(r Record) bool { return r.key == "" })
	}
}

// listed lists the sessions and finds my own among them: its CreateIndex
// is my place in the queue. Not listed, it has ended.
func (l *Lock) listed(wctx, ctx context.Context, deadline time.Time) error {
	if err := l.listSessions(wctx, ctx, deadline); err != nil {
		return err
	}
	s, ok := l.known[l.session]
	if !ok {
		return lost("session %s ended while waiting (destroyed or expired)", l.session)
	}
	l.mine = s.index
	return nil
}

// warnOnce logs a warning about what (an entry, a session) the first time.
func (l *Lock) warnOnce(what, msg string, args ...any) {
	if l.warned[what] {
		return
	}
	if l.warned == nil {
		l.warned = map[string]bool{}
	}
	l.warned[what] = true
	l.log.Warn(msg, args...)
}

// EpochKey is the key whose presence says that the lock store under prefix
// has not lost its state since a grant counted (checkEpoch).
func EpochKey(prefix string) string {
	return path.Join(prefixOr(prefix), "epoch")
}

// epochKey is the epoch key and the rule a token needs for it.
func (l *Lock) epochKey() (key, need string) {
	key = EpochKey(l.cfg.Prefix)
	return key, fmt.Sprintf("key:write on %q (key %q { policy = \"write\" })", key, key)
}

// readEpoch reads the epoch key, and sets l.epoch when it is there. Any
// read after this contender's session was created will do: a store that
// loses its state later loses the session too, and the contender queues
// again with a new one (and a new read). waitGrant reads it on its first
// wake-up, off the path of a handoff.
func (l *Lock) readEpoch(wctx, ctx context.Context, deadline time.Time) error {
	key, need := l.epochKey()
	var pair *api.KVPair
	if _, err := l.read(wctx, ctx, deadline, "read epoch key "+key, need, func(opts *api.QueryOptions) (*api.QueryMeta, error) {
		var err error
		var m *api.QueryMeta
		pair, m, err = l.kv.Get(key, opts)
		return m, err
	}, 0); err != nil {
		return err
	}
	l.epoch = pair != nil
	return nil
}

// checkEpoch reads the epoch key before the first grant, unless an earlier
// read found it. Missing, the
// store is new or lost its state (wiped, restored, `kv delete -recurse`):
// holders it forgot may still run until they fail a renewal. It waits the
// timing model's EpochWait, then writes the key (if nobody did meanwhile),
// so that later contenders do not wait; the value is advisory.
func (l *Lock) checkEpoch(wctx, ctx context.Context, deadline time.Time) (waited bool, err error) {
	key, need := l.epochKey()
	if err := l.readEpoch(wctx, ctx, deadline); err != nil || l.epoch {
		return false, err
	}
	wait := l.cfg.Lease.model().EpochWait()
	l.log.Warn("no epoch key: the lock store is new, or lost its state (wiped, restored, or kv delete -recurse); waiting a ttl before the grant counts, so that any holder it forgot has stopped",
		"key", l.cfg.ident(), "epoch_key", key, "wait", wait)
	select {
	case <-wctx.Done():
		if l.ctx.Err() != nil {
			return true, l.lossWhileWaiting()
		}
		return true, ctx.Err()
	case <-time.After(wait):
	}
	val, _ := json.Marshal(struct {
		Written time.Time `json:"written"`
		By      Holder    `json:"by"`
	}{time.Now().UTC().Truncate(time.Millisecond), l.cfg.Holder})
	rctx, cancel := context.WithTimeout(wctx, l.writeTimeout())
	defer cancel()
	// Only if still missing: a CAS on index 0.
	if _, _, err := l.kv.CAS(&api.KVPair{Key: key, Value: val}, (&api.WriteOptions{}).WithContext(rctx)); err != nil {
		if l.ctx.Err() != nil {
			return true, l.lossWhileWaiting()
		}
		return true, classify("write epoch key "+key, need, err)
	}
	l.epoch = true
	return true, nil
}

// read runs one read of waitGrant, blocking from index (0: not blocking),
// retrying what a leader election or an agent restart makes fail until the
// wait ends. Its errors are final: a loss, the caller's end, a refusal, or
// Consul unreachable. Its seven parameters stay one by one: each caller
// reads another entry (do) from another index, and names it for errors
// (op, need); a struct would only move the list into each call.
func (l *Lock) read(wctx, ctx context.Context, deadline time.Time, op, need string, do func(*api.QueryOptions) (*api.QueryMeta, error), index uint64) (*api.QueryMeta, error) {
	for {
		opts := &api.QueryOptions{}
		if index != 0 {
			// For a ttl at the latest (waitGrant).
			opts.WaitIndex, opts.WaitTime = index, min(max(time.Until(deadline), time.Millisecond), l.cfg.Tuning.MaxBlock, l.cfg.Lease.TTL)
		}
		// Consul answers a blocking query after WaitTime plus up to
		// WaitTime/16 of jitter; silence well past that is an agent that
		// does not answer, not a lock that is busy.
		rctx, rcancel := context.WithTimeout(wctx, opts.WaitTime+opts.WaitTime/16+l.requestTimeout())
		meta, err := do(opts.WithContext(rctx))
		timedOut := rctx.Err() == context.DeadlineExceeded
		rcancel()
		switch {
		case l.ctx.Err() != nil:
			return nil, l.lossWhileWaiting() // never grant a lock already lost
		case err == nil:
			return meta, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case timedOut:
			return nil, &UnreachableError{Op: op, Err: err}
		}
		err = classify(op, need, err)
		if final(err) || time.Now().After(deadline) {
			return nil, err
		}
		// A leader election or an agent restart: retry until the wait
		// ends; the renewal deadline decides "unreachable" meanwhile.
		l.log.Warn("reading lock entries failed; retrying", "key", l.cfg.ident(), "error", err)
		select {
		case <-wctx.Done():
		case <-time.After(l.cfg.Tuning.RetryDelay):
		}
		index = 0
	}
}

// blocker is the contender a waiting contender of mode waits behind: for
// an exclusive one the contender right ahead of it, for a shared one the
// nearest exclusive contender ahead, or, when slots (the cap in force,
// 0: none) shared contenders are ahead of it, the one right ahead
// (byCount); ok is false when there is none (the grant rule: eligible).
// The contenders ahead are holders or are granted first (FIFO), so fewer
// than slots ahead means fewer than slots holders.
func blocker(mode Mode, slots int, ahead []Record) (b Record, byCount, ok bool) {
	for i := len(ahead) - 1; i >= 0; i-- {
		if mode == Exclusive || ahead[i].Mode != Shared {
			return ahead[i], false, true
		}
	}
	if slots > 0 && len(ahead) >= slots {
		return ahead[len(ahead)-1], true, true
	}
	return Record{}, false, false
}

// lossWhileWaiting reports a session lost before the grant: a missed
// renewal deadline means Consul stopped answering (unreachable); a renewal
// the ACLs refused, a permission error; anything else (a destroy, an
// expiry) means the lock was not acquired.
func (l *Lock) lossWhileWaiting() error {
	cause := context.Cause(l.ctx)
	var le *lostError
	switch {
	case errors.As(cause, &le) && le.unreachable:
		return &UnreachableError{Op: "renew session while waiting", Err: cause}
	case errors.As(cause, &le) && le.denied != nil:
		return le.denied // final, as a token refused at once: no retry
	}
	return cause
}

func (l *Lock) timeout(ahead []Record) error {
	if len(ahead) == 0 {
		return fmt.Errorf("%w (%s)", ErrTimeout, l.cfg.Wait)
	}
	h := ahead[0]
	if h.key == "" {
		return fmt.Errorf("%w (%s): held by session %s (%s), whose lock entry a KV write deleted or released", ErrTimeout, l.cfg.Wait, h.Session, h.Mode)
	}
	return fmt.Errorf("%w (%s): held by %s (%s, %s since %s)", ErrTimeout, l.cfg.Wait,
		h.Holder, h.Mode, h.State, h.Since.Format(time.RFC3339))
}

// liveRecords decodes the entries whose session is alive; an entry not
// named for its session is not a contender's (trust.go). known, if not
// nil, is a listing of the sessions: the records come in their order,
// queue order, a holder's token is its session's CreateIndex and the
// slots are its session's. An entry whose session it does not hold is
// placed by its own CreateIndex.
func liveRecords(pairs api.KVPairs, known map[string]seen) []Record {
	out := []Record{} // a list, never null, in status -json
	for _, p := range pairs {
		if p.Session == "" || !entryName(p.Key, p.Session) {
			continue
		}
		var r Record
		if err := json.Unmarshal(p.Value, &r); err != nil || (r.Mode != Shared && r.Mode != Exclusive) {
			// Unreadable entries count as exclusive: never grant past
			// something we do not understand.
			r = Record{Mode: Exclusive, State: "unknown"}
		}
		r.Session = p.Session
		r.CreateIndex = p.CreateIndex
		r.key, r.modifyIndex = p.Key, p.ModifyIndex
		r.order = p.CreateIndex
		// The fencing token is the session's CreateIndex, as the holder's
		// command got it, never the value's text (0: not known); the mode
		// and the slots are the session's name's too.
		r.Token, r.Slots = 0, 0
		if s, ok := known[p.Session]; ok {
			r.order = s.index
			if r.State == StateHolding {
				r.Token = s.index
			}
			if _, mode, slots, ok := parseSessionName(s.name); ok {
				r.Mode, r.Slots = mode, slots
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].order < out[j].order })
	return out
}

// warnIgnored names, once per entry, what liveRecords left out: entries
// with a session but not named for it (a KV write's, not a contender's).
func (l *Lock) warnIgnored(pairs api.KVPairs) {
	for _, p := range pairs {
		if p.Session != "" && !entryName(p.Key, p.Session) {
			l.warnOnce(p.Key, "ignoring a lock entry not named for its session", "entry", Escape(p.Key), "session", p.Session)
		}
	}
}

// find finds session's entry among the live ones.
func find(live []Record, session string) (Record, bool) {
	for _, r := range live {
		if r.Session == session {
			return r, true
		}
	}
	return Record{}, false
}

// eligible is the grant rule: exclusive when first, shared when nothing
// exclusive precedes it and fewer than slots (if above 0) shared do.
func eligible(mode Mode, slots int, ahead []Record) bool {
	_, _, blocked := blocker(mode, slots, ahead)
	return !blocked
}

func (l *Lock) markHolding() {
	defer l.wg.Done()
	now := time.Now().UTC().Truncate(time.Millisecond)
	l.record.State = StateHolding
	l.record.Granted = &now
	l.record.Token = l.token
	ctx, cancel := l.untilStop()
	defer cancel()
	ok, err := l.putRecord(ctx)
	switch {
	case ctx.Err() != nil:
		// Lost, or released while the command was quick: the session is
		// gone or going, and a late write fails on it harmlessly.
	case err != nil:
		// Not a loss by itself: renewal and the deadline decide that.
		l.log.Warn("could not write the holder record", "key", l.entryKey, "error", err)
	case !ok:
		l.lose(lost("session %s invalidated at grant", l.session))
	}
}

// Context is cancelled when the lock is lost (cause wraps ErrLost) or
// released (cause ErrReleased).
func (l *Lock) Context() context.Context { return l.ctx }

// Session returns the Consul session ID.
func (l *Lock) Session() string { return l.session }

// Token returns the fencing token of this grant.
func (l *Lock) Token() uint64 { return l.token }

// EntryKey returns the KV key of this contender's record.
func (l *Lock) EntryKey() string { return l.entryKey }

// LastSent returns when the last confirmed renewal was sent, as a reading
// of CLOCK_BOOTTIME (time since boot, counting suspend): the clock the
// caller's kill deadlines must be computed on.
func (l *Lock) LastSent() time.Duration {
	return time.Duration(l.lastSentBoot())
}

func (l *Lock) lastSentBoot() clock.Boottime {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSent
}

// setRenewErr records how the last renewal failed, classified (nil: it
// succeeded), for the reason of a loss by the deadline.
func (l *Lock) setRenewErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastErr = err
}

// RenewErr is how the last renewal failed, classified (a TLS failure
// names the setting to fix); nil once a renewal succeeded.
func (l *Lock) RenewErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// Leases delivers the send time of each confirmed renewal; only the latest
// is kept, so a slow reader never blocks renewal.
func (l *Lock) Leases() <-chan time.Duration { return l.leases.C() }

func (l *Lock) setLease(sent clock.Boottime) {
	l.mu.Lock()
	if sent > l.lastSent {
		l.lastSent = sent
	}
	newest := l.lastSent
	l.mu.Unlock()
	l.leases.Set(time.Duration(newest))
}

// lose cancels the lock's context with err; the log line comes after, so
// the caller stopping the command does not wait for it.
func (l *Lock) lose(err error) {
	if l.stopping() {
		return // released or invalidated on purpose: not a loss
	}
	first := l.ctx.Err() == nil
	l.cancel(err)
	if first {
		l.log.Error("lock lost", "key", l.cfg.ident(), "session", l.session, "reason", err)
	}
}

func (l *Lock) renewLoop() {
	defer l.wg.Done()
	t := l.cfg.Lease
	timer := time.NewTimer(t.RenewInterval)
	defer timer.Stop()
	// Renewal goes on after a loss by the deadline, until Release: the
	// command's group may not be dead yet, and a session
	// that still lives keeps the next contender out meanwhile.
	stopCtx, stopCancel := context.WithCancel(context.Background())
	defer stopCancel()
	go func() {
		<-l.stop
		stopCancel()
	}()
	denials := 0 // refusals by the ACLs in a row
	for {
		select {
		case <-l.stop:
			return
		case <-timer.C:
		}
		sent := clock.Now()
		rctx, cancel := context.WithTimeout(stopCtx, l.requestTimeout())
		entry, _, err := l.sessions.Renew(l.session, (&api.WriteOptions{}).WithContext(rctx))
		cancel()
		switch {
		case err != nil:
			if stopCtx.Err() != nil {
				return
			}
			cerr := classify("renew session", "session:write", err)
			l.setRenewErr(cerr)
			var pe *PermissionError
			if !errors.As(cerr, &pe) {
				denials = 0
			} else {
				denials++
				// The first refusal is tried once more: a token file
				// replaced on disk is read by the next request.
				if denials == 1 {
					l.log.Warn("session renewal refused by Consul's ACLs; trying once more with the token file as it is then", "session", l.session, "error", pe.Detail)
					timer.Reset(min(t.RenewInterval, l.cfg.Tuning.RetryDelay))
					continue
				}
				// The token was revoked or lost its policy: no renewal
				// will succeed again, so the lease is lost now, not at
				// its deadline. (Renewal goes on while the session may
				// live: a policy restored in time still helps.)
				l.lose(&lostError{reason: fmt.Sprintf("renewal refused by Consul's ACLs (token revoked or policy changed): %s", pe.Detail), denied: pe})
			}
			l.log.Warn("session renewal failed; retrying", "session", l.session, "error", err.Error()+connLimitHint(err))
			timer.Reset(min(t.RenewInterval, l.cfg.Tuning.RetryDelay))
		case entry == nil:
			l.lose(lost("session %s not found on renewal (destroyed or expired)", l.session))
			return
		default:
			denials = 0
			l.setRenewErr(nil)
			l.setLease(sent)
			rtt := clock.Now().Sub(sent)
			l.log.Debug("session renewed", "session", l.session, "rtt", rtt)
			if l.cfg.OnRenew != nil {
				l.cfg.OnRenew(rtt)
			}
			// Count the interval from the send, not the answer: a slow
			// Consul must not stretch the gap between renewals.
			timer.Reset(max(0, t.RenewInterval-clock.Now().Sub(sent)))
		}
	}
}

// deadlineLoop cancels the lock when no renewal was confirmed in time. It
// polls CLOCK_BOOTTIME rather than trusting one long timer, which would
// not count time spent suspended.
func (l *Lock) deadlineLoop() {
	defer l.wg.Done()
	// Half the margin, so a deadline is seen well before the server may
	// act; at most 50ms, a poll that costs nothing measurable.
	tick := time.NewTicker(max(min(l.cfg.Lease.Margin/2, 50*time.Millisecond), time.Millisecond))
	defer tick.Stop()
	for {
		if clock.Now() >= l.cfg.Lease.model().Expiry(l.lastSentBoot()) {
			reason := fmt.Sprintf("no renewal confirmed within ttl %s − margin %s; the server may expire the session", l.cfg.Lease.TTL, l.cfg.Lease.Margin)
			if err := l.RenewErr(); err != nil {
				reason += "; the last renewal failed: " + err.Error()
			}
			l.lose(&lostError{unreachable: true, reason: reason})
			return
		}
		select {
		case <-l.stop:
			return
		case <-l.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watchEntry follows this contender's entry with a blocking query: the
// entry vanishes with its session (behaviour "delete"), which is how an
// external destroy or a server-side expiry is seen at once.
func (l *Lock) watchEntry() {
	defer l.wg.Done()
	wctx, cancel := l.untilStop()
	defer cancel()
	// The grant saw the entry as ours at grantIndex: block from there, with
	// no extra round trip while the command starts.
	index := l.grantIndex
	for {
		opts := &api.QueryOptions{WaitIndex: index, WaitTime: l.cfg.Tuning.MaxBlock}
		pair, meta, err := l.kv.Get(l.entryKey, opts.WithContext(wctx))
		if wctx.Err() != nil {
			return
		}
		if err != nil {
			l.log.Warn("watching lock entry failed; retrying", "key", l.entryKey, "error", err)
			select {
			case <-wctx.Done():
				return
			case <-time.After(l.cfg.Tuning.RetryDelay):
			}
			// Read at once, not from the old index: an agent back without
			// its state would hold a query from an index it never reached,
			// and the entry, gone with the state, would be missed.
			index = 0
			continue
		}
		// A KV write can delete, release or rewrite the entry while the
		// session lives: the grant no longer stands, and the holder fences
		// at once. Its session lives on until the command's group is dead,
		// which holds every other contender back meanwhile (trust.go).
		switch {
		case pair == nil:
			l.lose(lost("lock entry %s was deleted: by a KV write, or with its session (destroyed or expired)", l.entryKey))
			return
		case pair.Session == "":
			l.leftover.Store(pair.ModifyIndex)
			l.lose(lost("lock entry %s was released by a KV write (kv put -release)", l.entryKey))
			return
		case pair.Session != l.session:
			l.lose(lost("lock entry %s was re-acquired by session %s", l.entryKey, pair.Session))
			return
		case !l.wrote(pair.Value):
			l.lose(lost("lock entry %s was rewritten by a KV write, not by this holder", l.entryKey))
			return
		}
		if pair.CreateIndex != l.entryIndex {
			// Deleted and written again by a KV write: the grant saw
			// another entry.
			l.lose(lost("lock entry %s was deleted and re-created (create index %d, granted at %d)",
				l.entryKey, pair.CreateIndex, l.entryIndex))
			return
		}
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
	}
}

// stopping reports whether Release has begun.
func (l *Lock) stopping() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// untilStop is the lock's context, also cancelled when Release begins,
// for requests that must not hold it back.
func (l *Lock) untilStop() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(l.ctx)
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (l *Lock) shutdown() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
	l.cancel(ErrReleased)
}

// abandon cleans up after a failed Acquire, bounded in time.
func (l *Lock) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), max(l.requestTimeout(), l.cfg.Tuning.CleanupTimeout))
	defer cancel()
	_ = l.Release(ctx)
}

// Release destroys the session, which deletes its entry in the same Raft
// write (behaviour "delete") and so wakes the next waiter; the entry's key
// is never reused, so Consul's lock-delay on it holds nobody back. It is
// the one way a lock ends: after a clean end and on doubt (a lost lock, an
// unknown command state) alike, since a session that may still be renewed
// elsewhere must not outlive either. It stops renewing and watching first
// and waits for those goroutines only after the destroy, so their
// in-flight requests do not hold back the next holder.
func (l *Lock) Release(ctx context.Context) error {
	l.stopOnce.Do(func() { close(l.stop) })
	_, err := l.sessions.Destroy(l.session, (&api.WriteOptions{}).WithContext(ctx))
	if idx := l.leftover.Load(); idx != 0 && err == nil {
		// Only as it was seen: a CAS on its index.
		_, _, _ = l.kv.DeleteCAS(&api.KVPair{Key: l.entryKey, ModifyIndex: idx}, (&api.WriteOptions{}).WithContext(ctx))
	}
	l.shutdown()
	return classify("destroy session", "session:write", err)
}
