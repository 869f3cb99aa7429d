package consullock_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// fast is a timing that keeps fault tests at seconds (agents run with
// session_ttl_min = 1s).
var fast = consullock.Lease{TTL: 2 * time.Second, RenewInterval: 500 * time.Millisecond, Margin: 300 * time.Millisecond}

func cfg(c *api.Client, key string, mode consullock.Mode) consullock.Config {
	return consullock.Config{Client: c, Key: key, Mode: mode, Lease: fast,
		Holder: consullock.LocalHolder("test", "")}
}

func acquire(t *testing.T, c consullock.Config) *consullock.Lock {
	t.Helper()
	l, err := consullock.Acquire(context.Background(), c)
	if err != nil {
		t.Fatalf("Acquire(%s, %s): %v", c.Key, c.Mode, err)
	}
	return l
}

func release(t *testing.T, l *consullock.Lock) {
	t.Helper()
	if err := l.Release(context.Background()); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// acquireAsync starts an Acquire and returns a channel with its outcome.
func acquireAsync(c consullock.Config) <-chan *consullock.Lock {
	ch := make(chan *consullock.Lock, 1)
	go func() {
		l, err := consullock.Acquire(context.Background(), c)
		if err != nil {
			l = nil
		}
		ch <- l
	}()
	return ch
}

func expectNone(t *testing.T, ch <-chan *consullock.Lock, d time.Duration, what string) {
	t.Helper()
	select {
	case l := <-ch:
		t.Fatalf("%s was granted (%v) while it must wait", what, l != nil)
	case <-time.After(d):
	}
}

func expectGrant(t *testing.T, ch <-chan *consullock.Lock, what string) *consullock.Lock {
	t.Helper()
	select {
	case l := <-ch:
		if l == nil {
			t.Fatalf("%s failed to acquire", what)
		}
		return l
	case <-time.After(5 * time.Second):
		t.Fatalf("%s not granted within 5s", what)
	}
	return nil
}

func TestExclusiveWaitsAndTokensIncrease(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	var last uint64
	for i := 0; i < 10; i++ {
		l := acquire(t, cfg(c, "tokens", consullock.Exclusive))
		if l.Token() <= last {
			t.Fatalf("holder %d token %d not greater than previous %d", i, l.Token(), last)
		}
		last = l.Token()
		release(t, l)
	}

	first := acquire(t, cfg(c, "excl", consullock.Exclusive))
	second := cfg(c, "excl", consullock.Exclusive)
	second.Wait = time.Minute
	ch := acquireAsync(second)
	expectNone(t, ch, 700*time.Millisecond, "second exclusive")
	released := time.Now()
	release(t, first)
	l := expectGrant(t, ch, "second exclusive")
	if d := time.Since(released); d > 2*time.Second {
		t.Errorf("handoff took %s", d)
	}
	if l.Token() <= first.Token() {
		t.Errorf("token %d not greater than %d", l.Token(), first.Token())
	}
	release(t, l)
}

func TestSharedFairness(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	s1 := acquire(t, cfg(c, "fair", consullock.Shared))
	s2 := acquire(t, cfg(c, "fair", consullock.Shared)) // shared beside shared

	xc := cfg(c, "fair", consullock.Exclusive)
	xc.Wait = time.Minute
	xch := acquireAsync(xc)
	expectNone(t, xch, 500*time.Millisecond, "exclusive behind shared holders")

	// A shared contender behind a waiting exclusive one waits too (FIFO).
	s3c := cfg(c, "fair", consullock.Shared)
	s3c.Wait = time.Minute
	s3ch := acquireAsync(s3c)
	expectNone(t, s3ch, 500*time.Millisecond, "shared behind waiting exclusive")

	release(t, s1)
	expectNone(t, xch, 300*time.Millisecond, "exclusive while one shared still holds")
	release(t, s2)
	x := expectGrant(t, xch, "exclusive")
	expectNone(t, s3ch, 300*time.Millisecond, "shared while exclusive holds")
	release(t, x)
	s3 := expectGrant(t, s3ch, "shared after exclusive")
	if s3.Token() <= x.Token() {
		t.Errorf("token %d not greater than %d", s3.Token(), x.Token())
	}
	release(t, s3)
}

func TestTimeoutNamesHolder(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	h := acquire(t, cfg(c, "busy", consullock.Exclusive))
	defer release(t, h)
	w := cfg(c, "busy", consullock.Exclusive)
	w.Wait = 300 * time.Millisecond
	var busy []consullock.Record
	w.OnBusy = func(ahead []consullock.Record) { busy = ahead }
	start := time.Now()
	_, err := consullock.Acquire(context.Background(), w)
	if !errors.Is(err, consullock.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout after %s, want about 300ms", d)
	}
	if !strings.Contains(err.Error(), "held by") || len(busy) != 1 || busy[0].Session != h.Session() {
		t.Errorf("err %q / OnBusy %v do not name the holder %s", err, busy, h.Session())
	}
	// The timed-out contender left nothing behind.
	pairs, _, err := c.KV().List(consullock.RepoPrefix("", "busy"), nil)
	if err != nil || len(pairs) != 1 {
		t.Errorf("entries after timeout: %d (%v), want only the holder's", len(pairs), err)
	}
}

func TestExternalDestroyCancelsContext(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	l := acquire(t, cfg(c, "destroy", consullock.Exclusive))
	if _, err := c.Session().Destroy(l.Session(), nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-l.Context().Done():
	case <-time.After(time.Second):
		t.Fatal("context not cancelled within 1s of an external destroy")
	}
	if !errors.Is(context.Cause(l.Context()), consullock.ErrLost) {
		t.Errorf("cause = %v, want ErrLost", context.Cause(l.Context()))
	}
	t.Logf("loss seen %s after destroy returned", time.Since(start))
	_ = l.Release(context.Background())
}

// A release right after the grant races the holder record's write and the
// entry watch's first query: it must still end as a release, never be
// reported as a loss, and leave nothing behind.
func TestReleaseRightAfterGrant(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	var logs testcluster.SyncBuffer
	for i := 0; i < 20; i++ {
		conf := cfg(c, "quick", consullock.Exclusive)
		conf.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
		l := acquire(t, conf)
		start := time.Now()
		release(t, l)
		if d := time.Since(start); d > time.Second {
			t.Errorf("round %d: Release took %s", i, d)
		}
		if cause := context.Cause(l.Context()); !errors.Is(cause, consullock.ErrReleased) {
			t.Errorf("round %d: cause = %v, want ErrReleased", i, cause)
		}
		if info, _, err := c.Session().Info(l.Session(), nil); err != nil || info != nil {
			t.Errorf("round %d: session after Release: %v, %v", i, info, err)
		}
	}
	pairs, _, err := c.KV().List(consullock.RepoPrefix("", "quick")+"lock/", nil)
	if err != nil || len(pairs) != 0 {
		t.Errorf("lock entries left: %d (%v)", len(pairs), err)
	}
	for _, bad := range []string{"lock lost", "could not write"} {
		if strings.Contains(logs.String(), bad) {
			t.Errorf("log says %q:\n%s", bad, logs.String())
		}
	}
}

func TestHolderRecordInKV(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	t.Setenv("NOMAD_ALLOC_ID", "alloc-1234")
	t.Setenv("SECRETISH", "do-not-copy-me")
	conf := cfg(c, "record", consullock.Exclusive)
	conf.Holder = consullock.LocalHolder("v-test", "job-a")
	l := acquire(t, conf)
	defer release(t, l)
	// The holding state is written just after the grant.
	var pair *api.KVPair
	var r consullock.Record
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && r.State != consullock.StateHolding; {
		var err error
		pair, _, err = c.KV().Get(l.EntryKey(), nil)
		if err != nil || pair == nil {
			t.Fatalf("entry %s: %v", l.EntryKey(), err)
		}
		if err := json.Unmarshal(pair.Value, &r); err != nil {
			t.Fatal(err)
		}
	}
	if r.State != consullock.StateHolding || r.Token != l.Token() || r.Holder.NomadAllocID != "alloc-1234" ||
		r.Holder.Job != "job-a" || r.Holder.Version != "v-test" || r.Holder.PID == 0 {
		t.Errorf("record = %+v", r)
	}
	if strings.Contains(string(pair.Value), "do-not-copy-me") {
		t.Error("record contains an environment value")
	}
}

// A holder whose agent is frozen loses the lock by its local deadline,
// before the server expires the session and grants it elsewhere.
func TestFrozenAgentLosesByDeadline(t *testing.T) {
	srv := testcluster.StartServer(t)
	cli := testcluster.StartClient(t, srv)
	l := acquire(t, cfg(cli.Client(t), "frozen", consullock.Exclusive))
	cli.Freeze(t)
	defer cli.Thaw(t)
	frozen := time.Now()

	other := cfg(srv.Client(t), "frozen", consullock.Exclusive)
	other.Wait = 30 * time.Second
	ch := acquireAsync(other)

	var lostAt time.Time
	select {
	case <-l.Context().Done():
		lostAt = time.Now()
	case <-time.After(fast.TTL):
		t.Fatal("lock not lost within ttl of the freeze")
	}
	if !errors.Is(context.Cause(l.Context()), consullock.ErrLost) {
		t.Errorf("cause = %v", context.Cause(l.Context()))
	}
	o := expectGrantWithin(t, ch, 4*fast.TTL)
	grantedAt := time.Now()
	if !grantedAt.After(lostAt) {
		t.Errorf("competitor granted at %s, before the holder's loss at %s", grantedAt, lostAt)
	}
	t.Logf("holder lost %s after freeze; competitor granted %s after freeze", lostAt.Sub(frozen), grantedAt.Sub(frozen))
	release(t, o)
}

func expectGrantWithin(t *testing.T, ch <-chan *consullock.Lock, d time.Duration) *consullock.Lock {
	t.Helper()
	select {
	case l := <-ch:
		if l == nil {
			t.Fatal("competitor failed to acquire")
		}
		return l
	case <-time.After(d):
		t.Fatalf("competitor not granted within %s", d)
	}
	return nil
}

func TestUnreachable(t *testing.T) {
	conf := api.DefaultConfig()
	conf.Address = "127.0.0.1:" + itoa(testcluster.FreePort(t, "127.0.0.1"))
	c, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	_, err = consullock.Acquire(context.Background(), cfg(c, "x", consullock.Exclusive))
	var ue *consullock.UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want UnreachableError", err)
	}
}

func TestACLDenied(t *testing.T) {
	srv := testcluster.StartServer(t, testcluster.WithACL())
	mgmt := srv.Client(t)
	// A token that may read keys but not write them or create sessions.
	pol, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: "ro", Rules: `key_prefix "" { policy = "read" }`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conf := api.DefaultConfig()
	conf.Address = srv.Addr
	conf.Token = tok.SecretID
	c, _ := api.NewClient(conf)
	_, err = consullock.Acquire(context.Background(), cfg(c, "acl", consullock.Exclusive))
	var pe *consullock.PermissionError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want PermissionError", err)
	}
	if !strings.Contains(pe.Error(), "node:write") || strings.Contains(pe.Error(), tok.SecretID) {
		t.Errorf("error %q must name node:write and not contain the token", pe)
	}

	// May register the session node but not create sessions: session:write.
	pol2, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: "node-only", Rules: `node_prefix "" { policy = "write" }`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok2, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol2.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conf.Token = tok2.SecretID
	c2, _ := api.NewClient(conf)
	_, err = consullock.Acquire(context.Background(), cfg(c2, "acl", consullock.Exclusive))
	if !errors.As(err, &pe) || !strings.Contains(pe.Error(), "session:write") {
		t.Fatalf("err = %v, want PermissionError naming session:write", err)
	}
}

// A graceful leave of the holder's agent deregisters its node, and Consul
// invalidates the sessions of a deregistered node at once. Sessions live on
// repolock's own catalog node, so the leave does not hand the lock over
// while the holder, cut off from its agent, may still run.
func TestAgentLeaveKeepsSession(t *testing.T) {
	srv := testcluster.StartServer(t)
	cli := testcluster.StartClient(t, srv)
	l := acquire(t, cfg(cli.Client(t), "leave", consullock.Exclusive))
	other := cfg(srv.Client(t), "leave", consullock.Exclusive)
	other.Wait = 30 * time.Second
	ch := acquireAsync(other)
	expectNone(t, ch, 300*time.Millisecond, "competitor while the holder's agent is up")
	cli.Stop() // SIGINT: the client leaves the cluster gracefully
	left := time.Now()
	if entry, _, err := srv.Client(t).Session().Info(l.Session(), nil); err != nil || entry == nil {
		t.Fatalf("session gone right after the agent left (%v): the leave handed the lock over", err)
	}
	var lostAt time.Time
	select {
	case <-l.Context().Done():
		lostAt = time.Now()
	case <-time.After(fast.TTL):
		t.Fatal("holder did not lose the lock within ttl of its agent leaving")
	}
	o := expectGrantWithin(t, ch, 4*fast.TTL)
	if grantedAt := time.Now(); !grantedAt.After(lostAt) {
		t.Fatalf("competitor granted before the holder's loss")
	}
	t.Logf("holder lost %s after its agent left; competitor granted after", lostAt.Sub(left))
	release(t, o)
}

// A waiter whose agent stops answering rides it out while its wait lasts:
// its session lapses, it queues again with a new one (saying it lost its
// place), and it is granted once the holder releases.
func TestWaiterRidesOutFrozenAgent(t *testing.T) {
	srv := testcluster.StartServer(t)
	cli := testcluster.StartClient(t, srv)
	h := acquire(t, cfg(srv.Client(t), "wait-frozen", consullock.Exclusive))
	var logs testcluster.SyncBuffer
	w := cfg(cli.Client(t), "wait-frozen", consullock.Exclusive)
	w.Wait = time.Minute
	w.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	ch := make(chan error, 1)
	var granted *consullock.Lock
	go func() {
		l, err := consullock.Acquire(context.Background(), w)
		granted = l
		ch <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cli.Freeze(t)
	time.Sleep(3 * fast.TTL) // the waiter's session lapses on the server
	cli.Thaw(t)
	time.Sleep(fast.TTL)
	release(t, h)
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("waiter with a minute left: %v, want the grant after the outage", err)
		}
		release(t, granted)
	case <-time.After(30 * time.Second):
		t.Fatal("waiter not granted after its agent came back and the holder released")
	}
	if !strings.Contains(logs.String(), "lost its place in the queue") {
		t.Errorf("the waiter did not log that it lost its place:\n%s", logs.String())
	}
}

// A waiter whose wait is shorter than the outage reports Consul
// unreachable when the wait runs out, not a busy lock.
func TestFrozenAgentPastWait(t *testing.T) {
	srv := testcluster.StartServer(t)
	cli := testcluster.StartClient(t, srv)
	h := acquire(t, cfg(srv.Client(t), "wait-frozen-short", consullock.Exclusive))
	defer release(t, h)
	w := cfg(cli.Client(t), "wait-frozen-short", consullock.Exclusive)
	w.Wait = 3 * time.Second
	errc := make(chan error, 1)
	go func() {
		_, err := consullock.Acquire(context.Background(), w)
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cli.Freeze(t)
	defer cli.Thaw(t)
	select {
	case err := <-errc:
		var ue *consullock.UnreachableError
		if !errors.As(err, &ue) {
			t.Fatalf("err = %v, want UnreachableError", err)
		}
	case <-time.After(w.Wait + 3*fast.TTL):
		t.Fatal("waiter did not give up soon after its wait ran out")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// Issue 23, behaviour 4: a store without its epoch key (new, wiped,
// restored, kv delete -recurse) grants only a ttl after a contender found
// it missing, and then writes it: later grants do not wait. A token that
// may not read it is refused at once, naming the rule.
func TestEpoch(t *testing.T) {
	srv := testcluster.StartServer(t, testcluster.WithACL())
	mgmt := srv.Client(t)
	if _, err := mgmt.KV().Delete(consullock.EpochKey(""), nil); err != nil {
		t.Fatal(err)
	}
	c := cfg(mgmt, "epoch", consullock.Exclusive)
	began := time.Now()
	l := acquire(t, c)
	first := time.Since(began)
	release(t, l)
	if p, _, err := mgmt.KV().Get(consullock.EpochKey(""), nil); err != nil || p == nil {
		t.Fatalf("the epoch key was not written by the first grant: %v %v", p, err)
	}
	began = time.Now()
	release(t, acquire(t, c))
	second := time.Since(began)
	t.Logf("first grant on a store without an epoch key: %s (ttl %s); the next: %s", first.Round(time.Millisecond), fast.TTL, second.Round(time.Millisecond))
	if first < fast.TTL || second > fast.TTL/2 {
		t.Errorf("grants took %s and %s: want the first at least a ttl (%s), the next at once", first, second, fast.TTL)
	}

	tok := testcluster.PolicyToken(t, mgmt, "no-epoch", `node "repolock" { policy = "write" }
session "repolock" { policy = "write" }
key_prefix "repolock/repos/" { policy = "write" }`)
	conf := api.DefaultConfig()
	conf.Address, conf.Token = srv.Addr, tok.SecretID
	nc, _ := api.NewClient(conf)
	_, err := consullock.Acquire(context.Background(), cfg(nc, "epoch", consullock.Exclusive))
	var pe *consullock.PermissionError
	if !errors.As(err, &pe) || !strings.Contains(pe.Error(), `key "repolock/epoch"`) {
		t.Fatalf("err = %v, want a PermissionError naming the epoch key's rule", err)
	}
}
