package consullock_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
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
	t.Helper()
	target, _ := url.Parse("http://" + agent.Addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var reads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/kv/") {
			reads.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = strings.TrimPrefix(srv.URL, "http://")
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, &reads
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
