package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// Soak settings: REPOLOCK_SOAK is the duration (`make soak` sets 10m; the
// default is the 40 s version `make test` runs), REPOLOCK_SOAK_SEED repeats
// a run's random choices, REPOLOCK_SOAK_REPORT is a file for the table.
const (
	contenders = 12
	leaderKill = time.Minute
)

var soakKeys = []string{"alpha", "beta", "gamma", "delta"}

// soakSlots are the semaphore keys among soakKeys (issue 17): their shared
// contenders ask for this many slots, and Check counts their holders.
var soakSlots = map[string]int{"delta": 2}

// soaker is the state shared by the contenders and the fault injectors.
type soaker struct {
	h    *harness
	cl   *testcluster.Cluster
	stop time.Time

	agentFrozen sync.Mutex // one agent frozen at a time: a whole-site outage is the quorum test's

	mu      sync.Mutex
	rng     *rand.Rand
	faults  map[string]int
	ignored int      // runs whose command ignored SIGTERM
	garbage []string // the hostile writer's sessions, destroyed at the end
}

func (s *soaker) count(what string) {
	s.mu.Lock()
	s.faults[what]++
	s.mu.Unlock()
}

// intn and chance draw from the one seeded source.
func (s *soaker) intn(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

func (s *soaker) chance(p float64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

func (s *soaker) millis(lo, hi int) time.Duration {
	return time.Duration(lo+s.intn(hi-lo)) * time.Millisecond
}

// Issue 9, `make soak`: contenders of both modes on three keys against a
// three-server cluster, with a leader killed every minute, client agents
// frozen, repolock and its guard SIGKILLed and SIGSTOPped, and commands
// that ignore SIGTERM. Afterwards every heartbeat is checked for overlaps,
// every fencing token for order, every exit for honesty, and nothing may be
// left: no process, session or lock entry.
func TestSoak(t *testing.T) {
	d := 40 * time.Second // leaves make test inside its 12 minutes
	if v := os.Getenv("REPOLOCK_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("REPOLOCK_SOAK=%q: %v", v, err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("REPOLOCK_SOAK_SEED"); v != "" {
		fmt.Sscan(v, &seed)
	}
	t.Logf("soak for %s, seed %d (REPOLOCK_SOAK_SEED repeats the choices)", d, seed)
	s := &soaker{h: newHarness(t), cl: testcluster.StartCluster(t, 3, 2), rng: rand.New(rand.NewPCG(seed, 9)), faults: map[string]int{}}
	began := time.Now()
	s.stop = began.Add(d)
	var wg sync.WaitGroup
	for i := 0; i < contenders; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); s.contend() }()
	}
	var fw sync.WaitGroup
	fw.Add(3)
	go func() { defer fw.Done(); s.killLeaders(d) }()
	go func() { defer fw.Done(); s.inject(&fw) }()
	go func() { defer fw.Done(); s.hostileWriter() }()
	wg.Wait()
	fw.Wait()
	ran := time.Since(began)
	s.cl.WaitReady(t)
	for _, sid := range s.garbage {
		_, _ = s.cl.Servers[0].Client(t).Session().Destroy(sid, nil)
	}

	left := s.h.waitNoLeftovers(5 * time.Second)
	for _, l := range left {
		t.Errorf("leaked process %s", l)
	}
	sessions, entries, leftovers := leaks(t, s.cl.Servers[0].Client(t), 30*time.Second)
	for _, x := range append(sessions, entries...) {
		t.Errorf("leaked in Consul: %s", x)
	}
	vs := s.h.violations()
	report := s.table(ran, vs, len(left), len(sessions), len(entries), leftovers)
	t.Log("\n" + report)
	if f := os.Getenv("REPOLOCK_SOAK_REPORT"); f != "" {
		if err := os.WriteFile(f, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// contend runs one job after another until the soak ends.
func (s *soaker) contend() {
	for time.Now().Before(s.stop) {
		sp := spec{
			agent:  s.cl.Clients[s.intn(len(s.cl.Clients))],
			key:    soakKeys[s.intn(len(soakKeys))],
			mode:   "shared",
			length: s.millis(200, 1700),
			flags:  append(append([]string(nil), fast...), "-wait", "30s"),
		}
		if s.chance(0.6) {
			sp.mode = "exclusive"
		}
		if n := soakSlots[sp.key]; n > 0 && (sp.mode == "shared" || s.chance(0.7)) {
			// Mostly slot holders; now and then an exclusive one among them.
			sp.mode, sp.slots = "shared", n
		}
		if s.chance(0.3) {
			sp.ignoreTerm = true
			s.mu.Lock()
			s.ignored++
			s.mu.Unlock()
		}
		s.h.finish(s.h.start(sp), 2*time.Minute)
	}
}

// killLeaders kills the leader every minute (once, half-way, in a soak of
// a minute or less) and restarts it from its data dir 3 s later.
func (s *soaker) killLeaders(d time.Duration) {
	every := leaderKill
	if d <= leaderKill {
		every = d / 2
	}
	for next := time.Now().Add(every); next.Before(s.stop); next = next.Add(every) {
		time.Sleep(time.Until(next))
		leader := s.cl.Leader(s.h.t, 30*time.Second)
		leader.Kill(s.h.t)
		s.count("leader killed")
		time.Sleep(3 * time.Second)
		leader.Restart(s.h.t)
	}
}

// inject picks a fault every 1–3 s until the soak ends. Freezes end on
// their own goroutines; fw waits for them.
func (s *soaker) inject(fw *sync.WaitGroup) {
	for {
		time.Sleep(s.millis(1000, 3000))
		if !time.Now().Before(s.stop) {
			return
		}
		switch s.intn(5) {
		case 0:
			a := s.cl.Clients[s.intn(len(s.cl.Clients))]
			fw.Add(1)
			go func() { defer fw.Done(); s.freezeAgent(a, s.millis(1000, 5000)) }()
		case 1:
			s.signalRun("repolock SIGKILLed", false, func(r *run) int { return r.cmd.Process.Pid }, syscall.SIGKILL, 0, fw)
		case 2:
			s.signalRun("repolock SIGSTOPped", false, func(r *run) int { return r.cmd.Process.Pid }, syscall.SIGSTOP, s.millis(500, 5000), fw)
		case 3:
			s.signalRun("guard SIGKILLed", true, (*run).guard, syscall.SIGKILL, 0, fw)
		case 4:
			s.signalRun("guard SIGSTOPped", true, (*run).guard, syscall.SIGSTOP, s.millis(500, 3000), fw)
		}
	}
}

// hostileWriter makes a hostile write every 0.5–2 s until the soak ends.
func (s *soaker) hostileWriter() {
	for {
		time.Sleep(s.millis(500, 2000))
		if !time.Now().Before(s.stop) {
			return
		}
		s.hostile()
	}
}

// Hostile writes (issue 23): what an operator's consul kv, a cleanup
// script or any token with write on the prefix can do to lock entries.
const (
	hostileDelete    = "hostile: entry deleted"
	hostileFlip      = "hostile: entry's mode rewritten"
	hostileRelease   = "hostile: entry released (kv put -release)"
	hostileGarbage   = "hostile: garbage entry named .."
	hostileRecursive = "hostile: kv delete -recurse of the prefix"
)

var hostileWrites = []string{hostileDelete, hostileFlip, hostileRelease, hostileGarbage, hostileRecursive}

// hostile makes one hostile write through a client agent, on a random
// entry of a random key: none may make an overlap.
func (s *soaker) hostile() {
	a := s.cl.Clients[s.intn(len(s.cl.Clients))]
	c := a.Client(s.h.t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	q, w := (&api.QueryOptions{}).WithContext(ctx), (&api.WriteOptions{}).WithContext(ctx)
	key := soakKeys[s.intn(len(soakKeys))]
	folder := consullock.RepoPrefix("", key) + "lock/"
	what := hostileWrites[s.intn(4)]
	if s.chance(0.05) {
		what = hostileRecursive
	}
	var err error
	switch what {
	case hostileRecursive:
		_, err = c.KV().DeleteTree(consullock.DefaultPrefix+"/", w)
	case hostileGarbage:
		var sid string
		sid, _, err = c.Session().CreateNoChecks(&api.SessionEntry{Name: "soak garbage", TTL: "10s", Behavior: api.SessionBehaviorDelete}, w)
		if err == nil {
			s.mu.Lock()
			s.garbage = append(s.garbage, sid)
			s.mu.Unlock()
			var req *http.Request
			req, err = http.NewRequestWithContext(ctx, http.MethodPut, "http://"+a.Addr+"/v1/kv/"+folder+"%2E%2E?acquire="+sid, strings.NewReader("x"))
			if err == nil {
				var resp *http.Response
				if resp, err = http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}
	default:
		// A key with entries, if there is one.
		var pairs api.KVPairs
		first := s.intn(len(soakKeys))
		for j := range soakKeys {
			i := (first + j) % len(soakKeys)
			folder = consullock.RepoPrefix("", soakKeys[i]) + "lock/"
			if pairs, _, err = c.KV().List(folder, q); err != nil || len(pairs) > 0 {
				break
			}
		}
		if err != nil || len(pairs) == 0 {
			return
		}
		p := pairs[s.intn(len(pairs))]
		switch what {
		case hostileDelete:
			_, err = c.KV().Delete(p.Key, w)
		case hostileFlip:
			v := strings.NewReplacer(`"mode":"exclusive"`, `"mode":"shared"`, `"mode":"shared"`, `"mode":"exclusive"`).Replace(string(p.Value))
			_, err = c.KV().Put(&api.KVPair{Key: p.Key, Value: []byte(v)}, w)
		case hostileRelease:
			_, _, err = c.KV().Release(&api.KVPair{Key: p.Key, Session: p.Session, Value: p.Value}, w)
		}
	}
	if err == nil {
		s.count(what)
	}
}

func (s *soaker) freezeAgent(a *testcluster.Agent, d time.Duration) {
	if !s.agentFrozen.TryLock() {
		return
	}
	defer s.agentFrozen.Unlock()
	a.Freeze(s.h.t)
	s.count("client agent frozen")
	time.Sleep(d)
	a.Thaw(s.h.t)
}

// signalRun sends sig to a process of a random live run (only to runs
// whose command has started, if started) and, for SIGSTOP, SIGCONT after
// d. A run has at most one freeze at a time: repolock and its guard frozen
// together is a frozen machine, which no process can defend against.
func (s *soaker) signalRun(what string, started bool, pid func(*run) int, sig syscall.Signal, d time.Duration, fw *sync.WaitGroup) {
	r := s.pick(started)
	if r == nil || !r.frozen.CompareAndSwap(false, true) {
		return
	}
	p := pid(r)
	if p == 0 || syscall.Kill(p, sig) != nil {
		r.frozen.Store(false)
		return
	}
	s.count(what)
	if sig != syscall.SIGSTOP {
		r.frozen.Store(false)
		return
	}
	fw.Add(1)
	go func() {
		defer fw.Done()
		time.Sleep(d)
		_ = syscall.Kill(p, syscall.SIGCONT)
		r.frozen.Store(false)
	}()
}

// pick returns a random live run, nil if none qualifies.
func (s *soaker) pick(started bool) *run {
	s.h.mu.Lock()
	var rs []*run
	for _, r := range s.h.live {
		if !started || r.hasStarted() {
			rs = append(rs, r)
		}
	}
	s.h.mu.Unlock()
	if len(rs) == 0 {
		return nil
	}
	return rs[s.intn(len(rs))]
}

// table is the soak's one summary.
func (s *soaker) table(ran time.Duration, vs []Violation, procs, sessions, entries, leftovers int) string {
	s.h.mu.Lock()
	recs := append([]Record(nil), s.h.recs...)
	s.h.mu.Unlock()
	var granted, killed int
	exits := map[int]int{}
	for _, r := range recs {
		if r.Started {
			granted++
		}
		if r.Killed {
			killed++
		} else {
			exits[r.Exit]++
		}
	}
	kinds := map[string]int{}
	for _, v := range vs {
		kinds[v.Kind]++
	}
	var b strings.Builder
	row := func(k string, v any) { fmt.Fprintf(&b, "| %s | %v |\n", k, v) }
	b.WriteString("| soak | |\n|---|---|\n")
	row("duration", ran.Round(time.Second))
	row("contenders (60% exclusive, 40% shared; on key delta, about 82% slot holders of -slots 2)", fmt.Sprintf("%d on %d keys, 3 servers, 2 client agents", contenders, len(soakKeys)))
	row("runs", len(recs))
	row("grants (command started)", granted)
	for _, code := range []int{0, 76, 75, 69, 70} {
		row("exit "+Honest[code], exits[code])
	}
	row("repolock SIGKILLed by the soak", killed)
	for _, f := range append([]string{"leader killed", "client agent frozen", "repolock SIGKILLed", "repolock SIGSTOPped", "guard SIGKILLed", "guard SIGSTOPped"}, hostileWrites...) {
		row("fault: "+f, s.faults[f])
	}
	row("commands ignoring SIGTERM", s.ignored)
	for _, k := range []string{"overlap", "over-admission", "token", "dishonest exit", "exit code", "porcupine"} {
		row("violations: "+k, kinds[k])
	}
	row("leaked processes", procs)
	row("leaked sessions", sessions)
	row("leaked lock entries", entries)
	row("entries left with no session by hostile releases (break removes them)", leftovers)
	return b.String()
}
