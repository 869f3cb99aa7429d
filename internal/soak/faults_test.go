package soak

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/repolock/repolock/internal/testcluster"
)

// The fault matrix of issue 9, each case with real `repolock exec`
// processes whose commands write heartbeat files, on one cluster of three
// servers and two client agents. A holder talks to client 0, a waiter to
// client 1. Every case ends with the cluster whole again and checks the
// records: no overlap, fencing tokens in order, documented exit codes.
func TestFaultMatrix(t *testing.T) {
	cl := testcluster.StartCluster(t, 3, 2, testcluster.WithACL(), testcluster.WithTLS(testcluster.NewPKI(t)))
	token := testcluster.PolicyToken(t, cl.Servers[0].Client(t), "repolock", testcluster.ReadmePolicy).SecretID
	runCases(t, cl, token, []fcase[*testcluster.Cluster]{
		{"leader killed", leaderKilled},
		{"quorum lost past the TTL", quorumLost},
		{"leader frozen past the TTL", leaderFrozen},
		{"holder's agent restarted", holderAgentRestarted},
		{"all servers restarted", allServersRestarted},
		{"guard frozen", guardFrozen},
		{"guard killed", guardKilled},
		{"waiter's agent restarted", waiterAgentRestarted},
	}, cl.WaitReady)
}

// fcase is one case of a fault test on a shared cluster C.
type fcase[C any] struct {
	name string
	run  func(t *testing.T, h *harness, cl C)
}

// runCases runs each case as a subtest with its own harness, whose runs
// use token, then after (which waits until the cluster is whole again),
// then checks the case's records.
func runCases[C any](t *testing.T, cl C, token string, cases []fcase[C], after func(t testing.TB)) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.token = token
			c.run(t, h, cl)
			after(t)
			if vs := h.violations(); len(vs) == 0 {
				t.Logf("%d runs: 0 overlaps, tokens in order, exit codes documented", len(h.recs))
			}
		})
	}
}

// pair starts a holder on client 0 and, once its command runs, a waiter
// on client 1 with a two-minute wait.
func pair(t *testing.T, h *harness, cl *testcluster.Cluster, key string, timing []string, length time.Duration) (holder, waiter *run) {
	holder = h.start(spec{agent: cl.Clients[0], key: key, mode: "exclusive", length: length, flags: append(timing, "-wait", "30s")})
	holder.waitStarted(t, 30*time.Second)
	waiter = h.start(spec{agent: cl.Clients[1], key: key, mode: "exclusive", length: time.Second, flags: append(timing, "-wait", "2m")})
	time.Sleep(300 * time.Millisecond) // queued behind the holder
	return holder, waiter
}

// expect fails unless the run ended with one of codes.
func expect(t *testing.T, r *run, rec Record, codes ...int) {
	t.Helper()
	for _, c := range codes {
		if rec.Exit == c && !rec.Killed {
			return
		}
	}
	t.Errorf("run %d (%s) exited %d, want one of %v; output:\n%s", rec.ID, rec.Key, rec.Exit, codes, r.out)
}

// handover logs and returns the time between the holder's last heartbeat
// and the waiter's first.
func handover(t *testing.T, holder, waiter Record) time.Duration {
	t.Helper()
	if !waiter.Started {
		t.Errorf("the waiter never ran its command")
		return 0
	}
	gap := waiter.First.Sub(holder.Last)
	t.Logf("holder exited %d; waiter's first heartbeat %s after the holder's last", holder.Exit, gap.Round(time.Millisecond))
	return gap
}

// The leader is killed mid-run: a new one is elected within the deadline,
// the holder keeps its lock and runs to its end (exit 0), then the waiter.
func leaderKilled(t *testing.T, h *harness, cl *testcluster.Cluster) {
	holder, waiter := pair(t, h, cl, "leader-killed", slow, 10*time.Second)
	rideOutLeaderKill(t, h, cl, cl.Leader(t, 10*time.Second), holder, waiter)
}

// rideOutLeaderKill kills cl's leader while holder holds and waiter
// waits, restarts it once a new one is elected, and expects both runs to
// end with 0, the waiter after the holder.
func rideOutLeaderKill(t *testing.T, h *harness, cl *testcluster.Cluster, leader *testcluster.Agent, holder, waiter *run) {
	leader.Kill(t)
	killed := time.Now()
	next := cl.Leader(t, 30*time.Second)
	t.Logf("leader %s killed; %s elected %s later", leader.Name, next.Name, time.Since(killed).Round(time.Millisecond))
	leader.Restart(t)
	hr := h.finish(holder, time.Minute)
	expect(t, holder, hr, 0)
	wr := h.finish(waiter, time.Minute)
	expect(t, waiter, wr, 0)
	handover(t, hr, wr)
}

// Quorum is lost (2 of 3 servers frozen) for 12 s, longer than the TTL:
// the holder's command is stopped before its deadline (76), a waiter whose
// wait is shorter than the outage exits 69, nobody is granted until the
// quorum is back, and then the waiter with time left is.
func quorumLost(t *testing.T, h *harness, cl *testcluster.Cluster) {
	holder, waiter := pair(t, h, cl, "quorum-lost", fast, time.Minute)
	for _, s := range cl.Servers[:2] {
		s.Freeze(t)
	}
	lost := time.Now()
	short := h.start(spec{agent: cl.Clients[1], key: "quorum-lost", mode: "exclusive", length: time.Second,
		flags: append(append([]string(nil), fast...), "-wait", "5s")})
	hr := h.finish(holder, 30*time.Second)
	sr := h.finish(short, 30*time.Second)
	time.Sleep(time.Until(lost.Add(12 * time.Second)))
	for _, s := range cl.Servers[:2] {
		s.Thaw(t)
	}
	back := time.Now()
	expect(t, holder, hr, 76)
	expect(t, short, sr, 69)
	t.Logf("holder's last heartbeat %s after the quorum was lost (TTL 4 s)", hr.Last.Sub(lost).Round(time.Millisecond))
	wr := h.finish(waiter, 2*time.Minute)
	expect(t, waiter, wr, 0)
	if wr.Started && wr.First.Before(back) {
		t.Errorf("the waiter ran its command %s before the quorum came back", back.Sub(wr.First))
	}
	handover(t, hr, wr)
}

// The leader is frozen (SIGSTOP) for the TTL plus 4 s. The followers elect
// a new leader; the holder either keeps its lock through the new leader or
// fences itself (76), and the waiter is granted only after that.
func leaderFrozen(t *testing.T, h *harness, cl *testcluster.Cluster) {
	holder, waiter := pair(t, h, cl, "leader-frozen", slow, 15*time.Second)
	leader := cl.Leader(t, 10*time.Second)
	leader.Freeze(t)
	time.Sleep(12 * time.Second)
	leader.Thaw(t)
	hr := h.finish(holder, time.Minute)
	expect(t, holder, hr, 0, 76)
	wr := h.finish(waiter, 2*time.Minute)
	expect(t, waiter, wr, 0)
	handover(t, hr, wr)
}

// The holder's client agent is stopped gracefully or killed, and back
// within the deadline (the lock is kept: the session is bound to the
// catalog-only session node, not to the agent) or past it (the holder
// fences itself with 76 and the waiter is granted after that).
func holderAgentRestarted(t *testing.T, h *harness, cl *testcluster.Cluster) {
	agent := cl.Clients[0]
	for _, kill := range []bool{false, true} {
		for _, past := range []bool{false, true} {
			how := map[bool]string{false: "stopped gracefully", true: "killed"}[kill] + map[bool]string{false: ", back at once", true: ", back after the TTL"}[past]
			key := strings.NewReplacer(" ", "-", ",", "").Replace(how)
			// Back after the TTL, the holder must still be running at its
			// deadline: a graceful stop can take seconds, and the agent
			// confirms renewals until it is down, so the last one may come
			// up to 5 s after the stop began and the deadline 6 s after
			// that. 20 s outlasts both; the fence ends the command anyway.
			length := map[bool]time.Duration{false: 8 * time.Second, true: 20 * time.Second}[past]
			holder, waiter := pair(t, h, cl, key, slow, length)
			if kill {
				agent.Kill(t)
			} else {
				agent.Stop()
			}
			if past {
				time.Sleep(8 * time.Second)
			}
			agent.Restart(t)
			hr := h.finish(holder, time.Minute)
			want := map[bool]int{false: 0, true: 76}[past]
			expect(t, holder, hr, want)
			wr := h.finish(waiter, 2*time.Minute)
			expect(t, waiter, wr, 0)
			t.Logf("agent %s: holder exited %d", how, hr.Exit)
			handover(t, hr, wr)
		}
	}
}

// Every server is killed and started again from its data dir while a
// holder runs and a waiter waits: the holder keeps or fences, the waiter is
// granted afterwards.
func allServersRestarted(t *testing.T, h *harness, cl *testcluster.Cluster) {
	holder, waiter := pair(t, h, cl, "all-servers", slow, 10*time.Second)
	began := time.Now()
	cl.RestartServers(t)
	t.Logf("all 3 servers killed and restarted; the cluster served again after %s", time.Since(began).Round(time.Millisecond))
	hr := h.finish(holder, time.Minute)
	expect(t, holder, hr, 0, 76)
	wr := h.finish(waiter, 2*time.Minute)
	expect(t, waiter, wr, 0)
	handover(t, hr, wr)
}

// The guard frozen with SIGSTOP: repolock resumes it on its next poll,
// because a stopped guard would carry out neither a stop nor the dead
// man's switch. With the holder's agent frozen at the same time, the
// command is still stopped before the deadline (76).
func guardFrozen(t *testing.T, h *harness, cl *testcluster.Cluster) {
	r := h.start(spec{agent: cl.Clients[0], key: "guard-frozen", mode: "exclusive", length: 3 * time.Second, flags: fast})
	r.waitStarted(t, 30*time.Second)
	g := r.guard()
	if g == 0 {
		t.Fatal("no guard process found")
	}
	_ = syscall.Kill(g, syscall.SIGSTOP)
	rec := h.finish(r, 30*time.Second)
	expect(t, r, rec, 0)
	if !strings.Contains(r.out.String(), "guard process was stopped") {
		t.Errorf("repolock did not say it resumed its stopped guard:\n%s", r.out)
	}

	holder, waiter := pair(t, h, cl, "guard-frozen-lost", fast, time.Minute)
	g = holder.guard()
	_ = syscall.Kill(g, syscall.SIGSTOP)
	cl.Clients[0].Freeze(t)
	frozen := time.Now()
	hr := h.finish(holder, 30*time.Second)
	cl.Clients[0].Thaw(t)
	expect(t, holder, hr, 76)
	t.Logf("guard and agent frozen: last heartbeat %s later (soft deadline ≤ 2.5 s)", hr.Last.Sub(frozen).Round(time.Millisecond))
	wr := h.finish(waiter, time.Minute)
	expect(t, waiter, wr, 0)
	handover(t, hr, wr)
}

// The guard SIGKILLed while repolock lives: the command dies with it
// (PDEATHSIG), repolock kills the rest of the group, exits 70 and gives the
// session up only once the group is gone, so the waiter starts at once,
// without waiting for the TTL, and never beside the command.
func guardKilled(t *testing.T, h *harness, cl *testcluster.Cluster) {
	holder, waiter := pair(t, h, cl, "guard-killed", slow, time.Minute)
	_ = syscall.Kill(holder.guard(), syscall.SIGKILL)
	killed := time.Now()
	hr := h.finish(holder, 30*time.Second)
	expect(t, holder, hr, 70)
	wr := h.finish(waiter, time.Minute)
	expect(t, waiter, wr, 0)
	if wr.Started && wr.First.Sub(killed) > 4*time.Second {
		t.Errorf("the waiter started %s after the guard was killed: the session was not given up (TTL 8 s)", wr.First.Sub(killed))
	}
	handover(t, hr, wr)
	if left := h.waitNoLeftovers(2 * time.Second); len(left) > 0 {
		t.Errorf("processes left after the guard was killed:\n%s", strings.Join(left, "\n"))
	}
}

// The waiter's own agent is killed and restarted while it waits: it queues
// again and is granted after the holder, with no overlap.
func waiterAgentRestarted(t *testing.T, h *harness, cl *testcluster.Cluster) {
	holder, waiter := pair(t, h, cl, "waiter-agent", fast, 6*time.Second)
	cl.Clients[1].Kill(t)
	time.Sleep(500 * time.Millisecond)
	cl.Clients[1].Restart(t)
	hr := h.finish(holder, time.Minute)
	expect(t, holder, hr, 0)
	wr := h.finish(waiter, 2*time.Minute)
	expect(t, waiter, wr, 0)
	handover(t, hr, wr)
}
