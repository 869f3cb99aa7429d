package soak

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// Issue 22: one repository locked from two WAN-federated datacenters. The
// locks live in dc1; contenders talk to agents of either datacenter with
// -datacenter dc1. One federated pair serves every case; each case checks
// its records with Check and Porcupine, and that nothing is left in dc1.
func TestTwoDatacenters(t *testing.T) {
	f := testcluster.StartFederation(t)
	runCases(t, f, "", []fcase[*testcluster.Federation]{
		{"mutual exclusion and FIFO across datacenters", fedFIFO},
		{"WAN cut while a dc2 holder runs", fedWANCut},
		{"WAN latency of 200 ms each way", fedLatency},
		{"dc1 leader killed while a dc2 holder holds", fedLeaderKilled},
	}, func(t testing.TB) {
		f.DC1.WaitReady(t)
		if s, e, _ := leaks(t, f.DC1.Servers[0].Client(t), 30*time.Second); len(s)+len(e) > 0 {
			t.Errorf("left in dc1 after the case: sessions %q, entries %q", s, e)
		}
	})
}

// inDC1 is the flag set of a run on agent whose locks live in dc1, with
// timing. A run on dc2's client agent creates its session through dc2's
// server (-session-address): Consul creates a session in another
// datacenter only through a server agent.
func inDC1(f *testcluster.Federation, agent *testcluster.Agent, timing []string, more ...string) []string {
	flags := []string{"-datacenter", testcluster.DC1}
	if slices.Contains(f.DC2.Clients, agent) {
		flags = append(flags, "-session-address", f.DC2.Servers[0].Addr)
	}
	return append(append(flags, timing...), more...)
}

// queued waits until dc1's KV holds r's lock entry (its holder record names
// r's pid), so that the next contender queues behind it.
func queued(t *testing.T, c *api.Client, r *run, key string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, _, err := consullock.Status(context.Background(), c, "", key)
		if err == nil {
			for _, s := range st {
				if slices.ContainsFunc(s.Entries, func(e consullock.Record) bool { return e.Holder.PID == r.cmd.Process.Pid }) {
					return
				}
			}
		}
		select {
		case <-r.done:
			t.Fatalf("run %d ended (exit %d) before it queued:\n%s", r.rec.ID, r.cmd.ProcessState.ExitCode(), r.out)
		default:
		}
	}
	t.Fatalf("run %d: no lock entry in dc1 within 20 s:\n%s", r.rec.ID, r.out)
}

// Contenders alternate between dc2's client agent, dc1's servers and dc2's
// server, in exclusive and shared modes, each queued before the next
// starts: never two exclusive holders at once, and the grants follow the
// order of the requests across the datacenters (the fencing tokens, which
// are the entries' CreateIndex in dc1, rise with it).
func fedFIFO(t *testing.T, h *harness, f *testcluster.Federation) {
	agents := []*testcluster.Agent{f.DC2.Clients[0], f.DC1.Servers[0], f.DC2.Servers[0], f.DC1.Servers[1]}
	modes := []string{"exclusive", "shared", "shared", "exclusive", "shared", "exclusive", "exclusive", "shared"}
	dc1 := f.DC1.Servers[2].Client(t)
	var runs []*run
	for i, mode := range modes {
		a := agents[i%len(agents)]
		r := h.start(spec{agent: a, key: "fed-fifo", mode: mode, length: 700 * time.Millisecond, flags: inDC1(f, a, fast, "-wait", "2m")})
		queued(t, dc1, r, "fed-fifo")
		runs = append(runs, r)
	}
	var recs []Record
	for _, r := range runs {
		rec := h.finish(r, 2*time.Minute)
		expect(t, r, rec, 0)
		recs = append(recs, rec)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Token <= recs[i-1].Token {
			t.Errorf("run %d asked after run %d but has token %d ≤ %d: not FIFO across datacenters", recs[i].ID, recs[i-1].ID, recs[i].Token, recs[i-1].Token)
		}
	}
	for i := 1; i < len(recs); i++ {
		a, b := recs[i-1], recs[i]
		if (a.Mode == "exclusive" || b.Mode == "exclusive") && b.First.Before(a.First) {
			t.Errorf("run %d (%s) was granted before run %d (%s), which asked first", b.ID, b.Mode, a.ID, a.Mode)
		}
	}
}

// The WAN is cut while a dc2 holder runs: its command gets the kill signal
// before ttl has passed since the last renewal dc1 confirmed (which was
// sent before the cut), repolock exits 76, and a dc1 waiter is granted only
// once the session expired in dc1. After the cut heals, nothing is left.
func fedWANCut(t *testing.T, h *harness, f *testcluster.Federation) {
	const ttl, renew = 4 * time.Second, time.Second // fast
	holder := h.start(spec{agent: f.DC2.Clients[0], key: "fed-cut", mode: "exclusive", length: time.Minute, flags: inDC1(f, f.DC2.Clients[0], fast, "-wait", "30s")})
	holder.waitStarted(t, 30*time.Second)
	waiter := h.start(spec{agent: f.DC1.Servers[0], key: "fed-cut", mode: "exclusive", length: time.Second, flags: inDC1(f, f.DC1.Servers[0], fast, "-wait", "2m")})
	queued(t, f.DC1.Servers[1].Client(t), waiter, "fed-cut")
	f.CutWAN(t)
	cut := time.Now()
	hr := h.finish(holder, 30*time.Second)
	wr := h.finish(waiter, time.Minute)
	f.HealWAN(t)
	expect(t, holder, hr, 76)
	expect(t, waiter, wr, 0)
	if !hr.Last.Before(cut.Add(ttl)) {
		t.Errorf("the dc2 holder's command ran %s after the cut, past the TTL %s", hr.Last.Sub(cut), ttl)
	}
	// The last confirmed renewal was sent at most one interval before the
	// cut, so dc1 could not expire the session before cut + ttl − interval.
	if wr.Started && wr.First.Before(cut.Add(ttl-renew)) {
		t.Errorf("the dc1 waiter was granted %s after the cut, before the session could have expired", wr.First.Sub(cut))
	}
	t.Logf("WAN cut: dc2 holder's last heartbeat %s after it, exit %d; dc1 waiter granted %s after it",
		hr.Last.Sub(cut).Round(time.Millisecond), hr.Exit, wr.First.Sub(cut).Round(time.Millisecond))
}

// renewRTT matches repolock's debug line for a confirmed renewal.
var renewRTT = regexp.MustCompile(`session renewed:.*rtt=([0-9.]+[mµn]?s)`)

// With 200 ms of WAN latency each way, a dc2 holder at the default ttl
// (30 s) renews every second through dc1 without a fence, and runs to its
// end; a dc1 waiter follows. Acquire, handoff and release are reported.
func fedLatency(t *testing.T, h *harness, f *testcluster.Federation) {
	f.WANLatency(t, 200*time.Millisecond)
	defer f.WANLatency(t, 0)
	holder := h.start(spec{agent: f.DC2.Clients[0], key: "fed-latency", mode: "exclusive", length: 5 * time.Second,
		flags: inDC1(f, f.DC2.Clients[0], nil, "-renew-interval", "1s", "-wait", "1m", "-log-level", "debug")})
	holder.waitStarted(t, 30*time.Second)
	waiter := h.start(spec{agent: f.DC1.Servers[0], key: "fed-latency", mode: "exclusive", length: time.Second, flags: inDC1(f, f.DC1.Servers[0], nil, "-wait", "1m")})
	hr := h.finish(holder, time.Minute)
	wr := h.finish(waiter, time.Minute)
	expect(t, holder, hr, 0)
	expect(t, waiter, wr, 0)
	var rtts []time.Duration
	for _, m := range renewRTT.FindAllStringSubmatch(holder.out.String(), -1) {
		d, _ := time.ParseDuration(m[1])
		rtts = append(rtts, d)
	}
	if len(rtts) < 3 {
		t.Fatalf("the holder logged %d confirmed renewals in 5 s at a 1 s interval, want ≥ 3:\n%s", len(rtts), holder.out)
	}
	slices.Sort(rtts)
	if rtts[0] < 400*time.Millisecond {
		t.Errorf("a renewal took %s across a WAN of 400 ms round trip: the latency was not applied", rtts[0])
	}
	t.Logf("renewal round trips across the WAN: min %s, max %s (%d renewals)", rtts[0].Round(time.Millisecond), rtts[len(rtts)-1].Round(time.Millisecond), len(rtts))
	t.Logf("dc2 holder: acquire %s, release %s; handoff to dc1 %s",
		hr.First.Sub(hr.Requested).Round(time.Millisecond), hr.Exited.Sub(hr.Last).Round(time.Millisecond), handover(t, hr, wr).Round(time.Millisecond))
}

// dc1's leader is killed while a dc2 holder holds (ttl 8 s): a new leader
// is elected within the ttl and the holder rides it out (exit 0), as in the
// one-datacenter case; then the dc1 waiter runs.
func fedLeaderKilled(t *testing.T, h *harness, f *testcluster.Federation) {
	holder := h.start(spec{agent: f.DC2.Clients[0], key: "fed-leader", mode: "exclusive", length: 10 * time.Second, flags: inDC1(f, f.DC2.Clients[0], slow, "-wait", "30s")})
	holder.waitStarted(t, 30*time.Second)
	leader := f.DC1.Leader(t, 10*time.Second)
	var other *testcluster.Agent
	for _, s := range f.DC1.Servers {
		if s != leader {
			other = s
		}
	}
	waiter := h.start(spec{agent: other, key: "fed-leader", mode: "exclusive", length: time.Second, flags: inDC1(f, other, slow, "-wait", "2m")})
	queued(t, other.Client(t), waiter, "fed-leader")
	rideOutLeaderKill(t, h, f.DC1, leader, holder, waiter)
	if strings.Contains(holder.out.String(), "lock lost") {
		t.Errorf("the dc2 holder logged a loss:\n%s", holder.out)
	}
}
