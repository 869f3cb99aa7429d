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
func countingClient(t *testing.T, agent *testcluster.Agent) (*api.Client, *atomic.Int64) {
	p := testcluster.StartProxy(t, agent)
	return p.Client(t, false), &p.KVReads
}

// readsPerGrant queues n contenders of mixed modes on one key, all at once,
// lets each hold briefly, and returns the KV reads per grant.
func readsPerGrant(t *testing.T, agent *testcluster.Agent, key string, n int) float64 {
	t.Helper()
	c, reads := countingClient(t, agent)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		mode := consullock.Exclusive
		if i%3 == 1 {
			mode = consullock.Shared
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := cfg(c, key, mode)
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
	return float64(reads.Load()) / float64(n)
}

// Issue 9 acceptance 3: a waiter watches only the entry it waits behind,
// so the KV reads per grant do not grow with the queue: 200 queued
// contenders cost about as many reads per grant as 10.
func TestReadsPerGrantIndependentOfQueue(t *testing.T) {
	// 200 waiters hold 200 blocking queries from one address: above the
	// agent's default of 200 connections per client IP.
	agent := testcluster.StartServer(t, testcluster.WithMaxConnsPerClient(1000))
	small := readsPerGrant(t, agent, "queue-small", 10)
	large := readsPerGrant(t, agent, "queue-large", 200)
	t.Logf("KV reads per grant: %.1f with 10 contenders, %.1f with 200", small, large)
	const bound = 8 // a list and a watch per wake-up, a few wake-ups per grant
	if large > bound || large > 2*small+2 {
		t.Fatalf("%.1f reads per grant with 200 contenders (%.1f with 10): want at most %d and not growing with the queue", large, small, bound)
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
