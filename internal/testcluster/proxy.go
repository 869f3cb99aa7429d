package testcluster

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Proxy is an HTTP proxy in front of one agent that counts what its callers
// ask of Consul, for the tests and benchmarks that measure the cost per
// holder and per grant. All callers reach the agent from the proxy's one
// address, so the agent's per-client connection limit applies to their sum.
type Proxy struct {
	Addr     string
	Requests atomic.Int64 // every request
	KVReads  atomic.Int64 // GET /v1/kv/…
	// SessionReads are the session listings (GET /v1/session/list), which
	// a grant reads besides KV to check the entries against the sessions.
	SessionReads atomic.Int64
	Renewals     atomic.Int64 // PUT /v1/session/renew/…

	mu     sync.Mutex
	renews []time.Duration // how long each renewal took through the agent
}

// StartProxy starts a counting proxy in front of agent.
func StartProxy(t testing.TB, agent *Agent) *Proxy {
	t.Helper()
	target, _ := url.Parse("http://" + agent.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 10000}
	// Callers cancel blocking queries and requests past their deadline all
	// the time; that is not an error worth a line.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	p := &Proxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.Requests.Add(1)
		renew := strings.HasPrefix(r.URL.Path, "/v1/session/renew/")
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/kv/"):
			p.KVReads.Add(1)
		case r.Method == http.MethodGet && r.URL.Path == "/v1/session/list":
			p.SessionReads.Add(1)
		case renew:
			p.Renewals.Add(1)
		}
		began := time.Now()
		rp.ServeHTTP(w, r)
		if renew {
			p.mu.Lock()
			p.renews = append(p.renews, time.Since(began))
			p.mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	p.Addr = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// Client returns a client through the proxy; pooled keeps connections
// alive between requests, as one process with many locks would.
func (p *Proxy) Client(t testing.TB, pooled bool) *api.Client {
	t.Helper()
	cfg := api.DefaultNonPooledConfig()
	if pooled {
		cfg = api.DefaultConfig()
		cfg.Transport.MaxIdleConnsPerHost = 10000
	}
	cfg.Address = p.Addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Env is the CONSUL_HTTP_ADDR of a repolock process that goes through the
// proxy.
func (p *Proxy) Env() []string { return []string{"CONSUL_HTTP_ADDR=" + p.Addr} }

// Reset zeroes the counts and the renewal times.
func (p *Proxy) Reset() {
	p.Requests.Store(0)
	p.KVReads.Store(0)
	p.SessionReads.Store(0)
	p.Renewals.Store(0)
	p.mu.Lock()
	p.renews = nil
	p.mu.Unlock()
}

// RenewalQuantile returns the q-quantile (0.5, 0.99) of the renewal times
// since the last Reset.
func (p *Proxy) RenewalQuantile(q float64) time.Duration {
	p.mu.Lock()
	d := append([]time.Duration(nil), p.renews...)
	p.mu.Unlock()
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

// Usage returns the CPU time the agent's process has used and its resident
// memory now, from /proc.
func (a *Agent) Usage() (cpu time.Duration, rss int64) {
	pid := strconv.Itoa(a.cmd.Process.Pid)
	if b, err := os.ReadFile("/proc/" + pid + "/stat"); err == nil {
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 13 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			k, _ := strconv.ParseInt(f[12], 10, 64)
			cpu = time.Duration(u+k) * 10 * time.Millisecond // USER_HZ is 100 on Linux
		}
	}
	if b, err := os.ReadFile("/proc/" + pid + "/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				rss = kb * 1024
			}
		}
	}
	return cpu, rss
}
