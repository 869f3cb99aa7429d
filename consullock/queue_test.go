package consullock_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// countingClient is a client whose KV reads pass through a proxy that
// counts them.
func countingClient(t *testing.T, agent *testcluster.Agent) (*api.Client, func() int64) {
	p := testcluster.StartProxy(t, agent)
	return p.Client(t, false), func() int64 { return p.KVReads.Load() + p.SessionReads.Load() }
}

// readsPerGrant queues n contenders of mixed modes on one key, all at once,
// lets each hold briefly, and returns the reads (KV and session listings)
// per grant. garbage is how many hostile entries lie under the key first;
// slots, if above 0, makes every contender a shared one of that many slots.
func readsPerGrant(t *testing.T, agent *testcluster.Agent, key string, n, garbage, slots int) float64 {
	t.Helper()
	c, reads := countingClient(t, agent)
	testcluster.GarbageEntries(t, agent.Client(t), key, garbage)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		mode := consullock.Exclusive
		if i%3 == 1 || slots > 0 {
			mode = consullock.Shared
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := cfg(c, key, mode)
			cfg.Slots = slots
			cfg.Wait = 2 * time.Minute
			l, err := consullock.Acquire(context.Background(), cfg)
			if err != nil {
				errs <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
			errs <- l.Release(context.Background())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return float64(reads()) / float64(n)
}

// Issue 9 acceptance 3: a waiter watches only the entry it waits behind,
// so the reads per grant do not grow with the queue: 200 queued
// contenders cost about as many reads per grant as 10. Issue 23
// acceptance 5: nor with 10 hostile entries under the key.
func TestReadsPerGrantIndependentOfQueue(t *testing.T) {
	// 200 waiters hold 200 blocking queries from one address: above the
	// agent's default of 200 connections per client IP.
	agent := testcluster.StartServer(t, testcluster.WithMaxConnsPerClient(1000))
	small := readsPerGrant(t, agent, "queue-small", 10, 0, 0)
	large := readsPerGrant(t, agent, "queue-large", 200, 0, 0)
	hostile := readsPerGrant(t, agent, "queue-hostile", 200, 10, 0)
	t.Logf("reads per grant (KV and session listings): %.1f with 10 contenders, %.1f with 200, %.1f with 200 and 10 hostile entries", small, large, hostile)
	// Issue 17 acceptance 2: the same with -slots 3 (a semaphore).
	slots10 := readsPerGrant(t, agent, "queue-slots-10", 10, 0, 3)
	slots100 := readsPerGrant(t, agent, "queue-slots-100", 100, 0, 3)
	t.Logf("reads per grant with 3 slots: %.1f with 10 contenders, %.1f with 100", slots10, slots100)
	if slots100 > 12 || slots100 > 2*slots10+2 {
		t.Errorf("%.1f reads per grant with 100 contenders of 3 slots (%.1f with 10): want at most 12, not growing with the queue", slots100, slots10)
	}
	// A list and a watch per wake-up, a few wake-ups per grant, two
	// session listings (the contender's place, and the release of the one
	// ahead), an epoch read; and a list and a watch per ttl of waiting.
	const bound = 12
	if large > bound || large > 2*small+2 || hostile > large+1 {
		t.Fatalf("%.1f reads per grant with 200 contenders (%.1f with 10, %.1f with 10 hostile entries): want at most %d, not growing with the queue or the garbage", large, small, hostile, bound)
	}
}

// Issue 9 acceptance 4: 1,000 holders of distinct keys at once on the
// 3-server cluster: none misses a deadline (none is lost), and each renews
// at most 3 times per TTL (counted by a proxy in front of its agent).
func thousandHolders(t *testing.T, cl *testcluster.Cluster) {
	rc, renews := renewCountingClient(t, cl.Clients[0])
	const n = 1000
	lease := consullock.Lease{TTL: 6 * time.Second, RenewInterval: 2 * time.Second, Margin: 600 * time.Millisecond}
	locks := make([]*consullock.Lock, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 50) // grants in parallel, as independent jobs would
	for i := range locks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			l, err := consullock.Acquire(context.Background(), consullock.Config{Client: rc, Key: fmt.Sprintf("holder-%d", i),
				Mode: consullock.Exclusive, Lease: lease, Wait: time.Minute, Holder: consullock.LocalHolder("test", "")})
			locks[i] = l
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	renews.Store(0)
	start := time.Now()
	time.Sleep(2 * lease.TTL)
	held := time.Since(start)
	lost := 0
	for _, l := range locks {
		if l.Context().Err() != nil {
			lost++
		}
	}
	perHolderPerTTL := float64(renews.Load()) / n / (float64(held) / float64(lease.TTL))
	t.Logf("%d holders for %s: %d lost, %.2f renewals per TTL per holder", n, held.Round(time.Millisecond), lost, perHolderPerTTL)
	if lost != 0 {
		t.Errorf("%d of %d holders missed a deadline", lost, n)
	}
	if perHolderPerTTL > 3.05 {
		t.Errorf("%.2f renewals per TTL per holder, want at most 3", perHolderPerTTL)
	}
	for _, l := range locks {
		_ = l.Release(context.Background())
	}
}

// renewCountingClient is a pooled client through a proxy that counts
// session renewals.
func renewCountingClient(t *testing.T, agent *testcluster.Agent) (*api.Client, *atomic.Int64) {
	p := testcluster.StartProxy(t, agent)
	return p.Client(t, true), &p.Renewals
}

// Issue 17: a semaphore of 3 slots. 30 contenders at once, each holding
// 20–60 ms: never more than 3 hold at once, 3 do at times, every one is
// granted, in FIFO order (tokens: session CreateIndex, the queue order);
// an exclusive contender queued among them holds alone. Contenders that
// disagree (2 and 4 slots): never more than 2 while one of 2 is live.
func TestSlots(t *testing.T) {
	agent := testcluster.StartServer(t)
	c := agent.Client(t)
	type grant struct {
		token     uint64
		exclusive bool
	}
	run := func(t *testing.T, key string, slotsOf func(i int) int, n, exclusiveAt int) (most int, grants []grant) {
		var mu sync.Mutex
		holding, exclusiveHolds := 0, 0
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			cfg := cfg(c, key, consullock.Shared)
			cfg.Slots = slotsOf(i)
			if i == exclusiveAt {
				cfg.Mode, cfg.Slots = consullock.Exclusive, 0
			}
			cfg.Wait = time.Minute
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := consullock.Acquire(context.Background(), cfg)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				holding++
				if cfg.Mode == consullock.Exclusive {
					exclusiveHolds++
				}
				if holding > most {
					most = holding
				}
				if exclusiveHolds > 0 && holding > 1 {
					errs <- fmt.Errorf("%d holders beside an exclusive one", holding-1)
				}
				grants = append(grants, grant{l.Token(), cfg.Mode == consullock.Exclusive})
				mu.Unlock()
				time.Sleep(time.Duration(20+i%5*10) * time.Millisecond)
				mu.Lock()
				holding--
				if cfg.Mode == consullock.Exclusive {
					exclusiveHolds--
				}
				mu.Unlock()
				errs <- l.Release(context.Background())
			}()
			time.Sleep(time.Duration(i%3) * time.Millisecond) // arrivals spread a little
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		return most, grants
	}
	t.Run("3 slots", func(t *testing.T) {
		most, grants := run(t, "slots-3", func(int) int { return 3 }, 30, 15)
		t.Logf("30 contenders of 3 slots and one exclusive: at most %d held at once", most)
		if most != 3 || len(grants) != 30 {
			t.Errorf("at most %d held at once, %d of 30 granted: want 3 and all", most, len(grants))
		}
		// FIFO: a grant may pass an earlier contender's only within one
		// round of slots (granted at once), and never across the exclusive.
		for i := range grants {
			for j := range i {
				if grants[j].token > grants[i].token && (i-j > 3 || grants[i].exclusive || grants[j].exclusive) {
					t.Errorf("grant %d (token %d) came after grant %d of a later contender (token %d)", i, grants[i].token, j, grants[j].token)
				}
			}
		}
	})
	t.Run("2 and 4 slots", func(t *testing.T) {
		most, grants := run(t, "slots-2-4", func(i int) int { return 2 + 2*(i%2) }, 20, -1)
		t.Logf("20 contenders of 2 and 4 slots: at most %d held at once", most)
		if most > 2 || len(grants) != 20 {
			t.Errorf("at most %d held at once, %d of 20 granted: want at most 2 (the smallest cap of a live contender), and all", most, len(grants))
		}
	})
}
