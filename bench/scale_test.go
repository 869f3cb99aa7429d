package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// scaleLease is the lease of every holder in the scale section: the
// default relation, renewal every TTL/3.
var scaleLease = consullock.Lease{TTL: 6 * time.Second, RenewInterval: 2 * time.Second, Margin: 600 * time.Millisecond}

// BenchmarkScale measures what repolock costs a 3-server Consul cluster as
// it grows, and writes bench/scale.md:
//   - holders of distinct keys at once (in-process through consullock, and
//     as real `repolock exec` processes), with Consul's requests and Raft
//     writes per holder against the formula, renewal latency, missed
//     deadlines and the servers' CPU and memory;
//   - contenders queued on one key: grants/s, grant latency, KV reads per
//     grant and FIFO order;
//   - one agent at its default per-client connection limit.
func BenchmarkScale(b *testing.B) {
	root := testcluster.RepoRoot(b)
	repolock := testcluster.Binary(b, "repolock")
	var out strings.Builder
	fmt.Fprintf(&out, "Against a cluster of 3 Consul servers and 2 client agents on loopback (`make bench`, %s, %d CPUs).\n",
		time.Now().Format("2006-01-02"), numCPU())
	fmt.Fprintf(&out, "Every holder has TTL %s and renews every %s.\n\n", scaleLease.TTL, scaleLease.RenewInterval)
	for n := 0; n < b.N; n++ {
		cl := testcluster.StartCluster(b, 3, 2, testcluster.WithMaxConnsPerClient(5000))
		for _, section := range []func() string{
			func() string { return holdersSection(b, cl, repolock) },
			func() string { return contendersSection(b, cl) },
			func() string { return connLimitSection(b, repolock) },
		} {
			s := section()
			fmt.Print(s) // as it comes: the whole run takes minutes
			out.WriteString(s)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bench", "scale.md"), []byte(out.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

// raftIndex is the leader's last Raft log index (from its agent's own
// stats, which are current): every write is one entry.
func raftIndex(b *testing.B, cl *testcluster.Cluster) uint64 {
	self, err := cl.Leader(b, 10*time.Second).Client(b).Agent().Self()
	if err != nil {
		b.Fatal(err)
	}
	raft, _ := self["Stats"]["raft"].(map[string]any)
	idx, err := strconv.ParseUint(fmt.Sprint(raft["last_log_index"]), 10, 64)
	if err != nil {
		b.Fatalf("no raft last_log_index in the leader's stats: %v", self["Stats"])
	}
	return idx
}

// serverUsage sums the servers' CPU time and resident memory.
func serverUsage(cl *testcluster.Cluster) (cpu time.Duration, rss int64) {
	for _, s := range cl.Servers {
		c, r := s.Usage()
		cpu, rss = cpu+c, rss+r
	}
	return cpu, rss
}

// steady is one measured window while holders hold.
type steady struct {
	holders            int
	window             time.Duration
	requests, renews   int64
	raft               float64 // Raft entries per second
	p50, p99           time.Duration
	lost               int
	cpu                float64 // server CPU, cores
	rss                int64   // server RSS, sum of the three
	grantRaft, relRaft float64 // Raft entries per grant and per release
}

// measure watches a window of two TTLs through the proxies.
func measure(b *testing.B, cl *testcluster.Cluster, proxies []*testcluster.Proxy, holders int, lost func() int) steady {
	for _, p := range proxies {
		p.Reset()
	}
	r0 := raftIndex(b, cl)
	cpu0, _ := serverUsage(cl)
	began := time.Now()
	time.Sleep(2 * scaleLease.TTL)
	w := time.Since(began)
	r1 := raftIndex(b, cl)
	cpu1, rss := serverUsage(cl)
	s := steady{holders: holders, window: w, raft: float64(r1-r0) / w.Seconds(), lost: lost(),
		cpu: float64(cpu1-cpu0) / float64(w), rss: rss}
	for _, p := range proxies {
		s.requests += p.Requests.Load()
		s.renews += p.Renewals.Load()
		s.p50, s.p99 = max(s.p50, p.RenewalQuantile(0.5)), max(s.p99, p.RenewalQuantile(0.99))
	}
	return s
}

// holdersSection runs 100, 300 and 1,000 holders in-process, then 200
// repolock processes, and returns the table.
func holdersSection(b *testing.B, cl *testcluster.Cluster, repolock string) string {
	p := testcluster.StartProxy(b, cl.Clients[0])
	idle := measure(b, cl, []*testcluster.Proxy{p}, 0, func() int { return 0 })
	var rows []steady
	for _, n := range []int{100, 300, 1000} {
		rows = append(rows, inProcess(b, cl, p, n))
	}
	rows = append(rows, processes(b, cl, repolock, 200))
	var t strings.Builder
	perTTL := float64(scaleLease.TTL / scaleLease.RenewInterval)
	fmt.Fprintf(&t, "### Holders at once\n\nFormula per holder: %.0f renewals per TTL (one every %s) plus one blocking query on its own entry per 5 min; "+
		"0 Raft writes while it holds (a renewal resets a timer in the leader's memory). A grant costs 4 writes: the catalog entry of the session node, the session, the queue entry and the holder record; a release 1, the session destroy, which deletes the entry in the same write (a `repolock exec` adds one: its last-run record). "+
		"Idle cluster: %.2f Raft entries/s of its own (subtracted below).\n\n", perTTL, scaleLease.RenewInterval, idle.raft)
	t.WriteString("| holders | requests/s per holder | renewals per TTL per holder | Raft writes/s per holder | Raft writes per grant / release | renewal p50 / p99 | missed deadlines | servers' CPU | servers' RSS (sum) |\n")
	t.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for i, r := range rows {
		name := fmt.Sprintf("%d in-process", r.holders)
		if i == len(rows)-1 {
			name = fmt.Sprintf("%d `repolock exec` processes", r.holders)
		}
		h := float64(r.holders)
		fmt.Fprintf(&t, "| %s | %.3f | %.2f | %.4f | %.1f / %.1f | %.1f / %.1f ms | %d | %.0f%% of a core | %.0f MiB |\n",
			name, float64(r.requests)/h/r.window.Seconds(), float64(r.renews)/h/(float64(r.window)/float64(scaleLease.TTL)),
			max(r.raft-idle.raft, 0)/h, r.grantRaft, r.relRaft, ms(r.p50), ms(r.p99), r.lost, 100*r.cpu, float64(r.rss)/(1<<20))
	}
	t.WriteString("\n")
	return t.String()
}

// inProcess takes n locks of distinct keys through one pooled client, holds
// them for two TTLs, and releases them.
func inProcess(b *testing.B, cl *testcluster.Cluster, p *testcluster.Proxy, n int) steady {
	c := p.Client(b, true)
	locks := make([]*consullock.Lock, n)
	r0 := raftIndex(b, cl)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range locks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			l, err := consullock.Acquire(context.Background(), consullock.Config{Client: c, Key: fmt.Sprintf("hold%d-%d", n, i),
				Mode: consullock.Exclusive, Lease: scaleLease, Wait: time.Minute, Holder: consullock.LocalHolder("bench", "")})
			if err != nil {
				b.Error(err)
				return
			}
			locks[i] = l
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	grants := float64(raftIndex(b, cl) - r0)
	s := measure(b, cl, []*testcluster.Proxy{p}, n, func() int {
		lost := 0
		for _, l := range locks {
			if l.Context().Err() != nil {
				lost++
			}
		}
		return lost
	})
	r1 := raftIndex(b, cl)
	for _, l := range locks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_ = l.Release(context.Background())
		}()
	}
	wg.Wait()
	s.grantRaft, s.relRaft = grants/float64(n), float64(raftIndex(b, cl)-r1)/float64(n)
	return s
}

// processes starts n real repolock exec holders, half through each client
// agent, holds for two TTLs and stops them with SIGTERM.
func processes(b *testing.B, cl *testcluster.Cluster, repolock string, n int) steady {
	proxies := []*testcluster.Proxy{testcluster.StartProxy(b, cl.Clients[0]), testcluster.StartProxy(b, cl.Clients[1])}
	sc := cl.Servers[0].Client(b)
	r0 := raftIndex(b, cl)
	cmds := make([]*exec.Cmd, n)
	first := &testcluster.SyncBuffer{}
	for i := range cmds {
		cmd := exec.Command(repolock, "exec", "-key", fmt.Sprintf("proc-%d", i), "-ttl", scaleLease.TTL.String(),
			"-renew-interval", scaleLease.RenewInterval.String(), "-margin", scaleLease.Margin.String(), "-kill-timeout", "1s",
			"-wait", "1m", "--", "sleep", "3600")
		cmd.Env = append(os.Environ(), proxies[i%2].Env()...)
		if i == 0 {
			cmd.Stderr = first
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmds[i] = cmd
	}
	defer func() {
		for _, cmd := range cmds {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	if err := waitHolders(b, sc, "proc-", n); err != nil {
		b.Fatalf("%v; the first repolock said:\n%s", err, first)
	}
	grants := float64(raftIndex(b, cl) - r0)
	s := measure(b, cl, proxies, n, func() int {
		gone := 0
		for _, cmd := range cmds {
			if syscall.Kill(cmd.Process.Pid, 0) != nil {
				gone++
			}
		}
		return gone + (n - countHolders(b, sc, "proc-"))
	})
	r1 := raftIndex(b, cl)
	for _, cmd := range cmds {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, cmd := range cmds {
		_ = cmd.Wait()
	}
	s.grantRaft, s.relRaft = grants/float64(n), float64(raftIndex(b, cl)-r1)/float64(n)
	return s
}

// countHolders counts the holding records of keys with prefix.
func countHolders(b *testing.B, c *api.Client, prefix string) int {
	pairs, _, err := c.KV().List("repolock/repos/"+prefix, nil)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, p := range pairs {
		if strings.Contains(p.Key, "/lock/") && p.Session != "" && strings.Contains(string(p.Value), `"holding"`) {
			n++
		}
	}
	return n
}

func waitHolders(b *testing.B, c *api.Client, prefix string, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for countHolders(b, c, prefix) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d holders after 2 min", countHolders(b, c, prefix), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// contendersSection queues 1, 10, 50 and 200 contenders of mixed modes on
// one key behind a gate holder, opens the gate, and measures the grants.
func contendersSection(b *testing.B, cl *testcluster.Cluster) string {
	var t strings.Builder
	t.WriteString("### Contenders on one key\n\nEach contender (every third one shared) queues behind a gate holder, in a known order; then the gate opens and each holds for 5 ms. " +
		"Grant latency: from the release before a grant to the grant. KV reads counted by a proxy in front of the agent.\n\n")
	t.WriteString("| contenders | grants/s | grant latency p50 / p99 | reads per grant (KV and session listings) | FIFO order |\n| --- | --- | --- | --- | --- |\n")
	for _, row := range []struct{ n, garbage, slots int }{{1, 0, 0}, {10, 0, 0}, {50, 0, 0}, {200, 0, 0}, {200, 10, 0}, {10, 0, 3}, {100, 0, 3}} {
		q := queue(b, cl, row.n, row.garbage, row.slots)
		fifo := "held"
		if q.fifoBroken > 0 {
			fifo = fmt.Sprintf("BROKEN (%d pairs)", q.fifoBroken)
		}
		name := fmt.Sprint(row.n)
		if row.garbage > 0 {
			name += fmt.Sprintf(", %d garbage entries", row.garbage)
		}
		if row.slots > 0 {
			name += fmt.Sprintf(", all of -slots %d", row.slots)
		}
		fmt.Fprintf(&t, "| %s | %.0f | %.1f / %.1f ms | %.1f | %s |\n", name, q.grantsPerSec, ms(q.p50), ms(q.p99), q.readsPerGrant, fifo)
	}
	t.WriteString("\nGarbage entries (issue 23): entries under the key that are not a contender's — named other than their session, " +
		"held by a session not named for the key, left with no session — written before the queue forms. " +
		"`-slots 3` (issue 17): a semaphore, every contender shared with 3 slots; FIFO then means no grant passes one queued ahead of it by more than the 3 slots.\n\n")
	return t.String()
}

type queueResult struct {
	grantsPerSec, readsPerGrant float64
	p50, p99                    time.Duration
	fifoBroken                  int
}

type contender struct {
	arrival           int
	mode              consullock.Mode
	granted, released time.Time
}

// queue measures one queue of n contenders, with garbage entries under
// the key that are not a contender's.
func queue(b *testing.B, cl *testcluster.Cluster, n, garbage, slots int) queueResult {
	p := testcluster.StartProxy(b, cl.Clients[0])
	c := p.Client(b, false)
	key := fmt.Sprintf("queue-%d-%d-%d", n, garbage, slots)
	testcluster.GarbageEntries(b, cl.Servers[0].Client(b), key, garbage)
	cfg := func(mode consullock.Mode) consullock.Config {
		return consullock.Config{Client: c, Key: key, Mode: mode, Lease: scaleLease, Wait: 5 * time.Minute, Holder: consullock.LocalHolder("bench", "")}
	}
	gate, err := consullock.Acquire(context.Background(), cfg(consullock.Exclusive))
	if err != nil {
		b.Fatal(err)
	}
	cs := make([]*contender, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range cs {
		cs[i] = &contender{arrival: i, mode: consullock.Exclusive}
		if i%3 == 1 || slots > 0 {
			cs[i].mode = consullock.Shared
		}
		wg.Add(1)
		go func(ct *contender) {
			defer wg.Done()
			conf := cfg(ct.mode)
			conf.Slots = slots
			l, err := consullock.Acquire(context.Background(), conf)
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			ct.granted = time.Now()
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			ct.released = time.Now() // before the release: the lock may be free from here on
			mu.Unlock()
			_ = l.Release(context.Background())
		}(cs[i])
		waitQueued(b, cl.Servers[0].Client(b), key, garbage+i+2) // the garbage, the gate and everyone so far
	}
	p.Reset()
	opened := time.Now()
	_ = gate.Release(context.Background())
	wg.Wait()
	total := time.Since(opened)
	r := queueResult{grantsPerSec: float64(n) / total.Seconds(), readsPerGrant: float64(p.KVReads.Load()+p.SessionReads.Load()) / float64(n)}
	var lat []time.Duration
	for _, ct := range cs {
		free := opened
		for _, o := range cs {
			if o.released.Before(ct.granted) && o.released.After(free) {
				free = o.released
			}
		}
		lat = append(lat, ct.granted.Sub(free))
		for k, o := range cs[ct.arrival+1:] {
			if (ct.mode == consullock.Exclusive || o.mode == consullock.Exclusive || (slots > 0 && k >= slots)) && !o.granted.After(ct.granted) {
				r.fifoBroken++
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r.p50, r.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	return r
}

// waitQueued waits until key has n queue entries.
func waitQueued(b *testing.B, c *api.Client, key string, n int) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		keys, _, err := c.KV().Keys("repolock/repos/"+key+"/lock/", "", nil)
		if err == nil && len(keys) >= n {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatalf("%s: fewer than %d queue entries after 30 s", key, n)
}

// connLimitSection starts repolock exec holders of distinct keys against
// one agent with the default limit of 200 HTTP connections per client IP,
// one after another, until one is not granted, and reports how many were
// served, what the next one saw, and whether any earlier holder suffered.
func connLimitSection(b *testing.B, repolock string) string {
	srv := testcluster.StartServer(b)
	type holder struct {
		cmd  *exec.Cmd
		out  *testcluster.SyncBuffer
		done chan struct{}
	}
	var hs []holder
	defer func() {
		for _, h := range hs {
			_ = h.cmd.Process.Kill()
			<-h.done
		}
	}()
	served, code, said := 0, 0, ""
	for i := 0; i < 300 && said == ""; i++ {
		h := holder{out: &testcluster.SyncBuffer{}, done: make(chan struct{})}
		h.cmd = exec.Command(repolock, "exec", "-key", fmt.Sprintf("conn-%d", i), "-wait", "15s", "--", "sleep", "3600")
		h.cmd.Env = append(os.Environ(), srv.Env("")...)
		h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
		h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := h.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		hs = append(hs, h)
		go func() { _ = h.cmd.Wait(); close(h.done) }()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if strings.Contains(h.out.String(), "lock acquired") {
				served++
				break
			}
			select {
			case <-h.done:
				code, said = h.cmd.ProcessState.ExitCode(), lastLine(h.out.String())
			case <-time.After(20 * time.Millisecond):
			}
			if said != "" || time.Now().After(deadline) {
				if said == "" {
					said = "no grant and no exit after 30 s (a hang)"
				}
				break
			}
		}
	}
	time.Sleep(2 * scaleLease.TTL) // let the squeeze bite the holders' renewals
	// A holder that lost its lock ends by itself once its command is
	// stopped: collect how each one ended and whether it was told why.
	lost, codes, told := 0, map[int]int{}, 0
	for _, h := range hs[:served] {
		if !strings.Contains(h.out.String(), "lock lost") {
			select {
			case <-h.done:
			default:
				continue // still holding
			}
		}
		lost++
		select {
		case <-h.done:
			codes[h.cmd.ProcessState.ExitCode()]++
		case <-time.After(10 * time.Second):
			codes[-1]++ // not ended 10 s after its loss
		}
		if strings.Contains(h.out.String(), "http_max_conns_per_client") {
			told++
		}
	}
	conns := established(srv.Addr)
	var t strings.Builder
	t.WriteString("### One agent, default connection limit\n\n")
	fmt.Fprintf(&t, "`repolock exec` holders of distinct keys started one by one against one agent with the default `limits.http_max_conns_per_client` (200): "+
		"**%d served** (%d connections open to the agent, two per holder: its renewals and the blocking query on its own entry). "+
		"The next one: exit %d after its `-wait 15s`, saying `%s`. Holders already running that lost their lock meanwhile: %d "+
		"(%s; %d of them logged the connection-limit hint).\n\n", served, conns, code, said, lost, exitCounts(codes), told)
	return t.String()
}

// exitCounts renders exit code → count as "exit 76: 4", -1 meaning not
// ended.
func exitCounts(codes map[int]int) string {
	var parts []string
	for c, n := range codes {
		parts = append(parts, fmt.Sprintf("exit %d: %d", c, n))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	return last
}

// established counts the TCP connections to addr that are established.
func established(addr string) int {
	out, err := exec.Command("ss", "-Htn", "state", "established", "dst", addr).Output()
	if err != nil {
		return -1
	}
	return strings.Count(string(out), "\n")
}
