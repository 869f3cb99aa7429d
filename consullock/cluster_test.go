package consullock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// clusterLease outlasts a leader election on loopback (about 1–2s with
// raft_multiplier 1) yet keeps the quorum-loss test short.
var clusterLease = consullock.Lease{TTL: 8 * time.Second, RenewInterval: 2 * time.Second, Margin: time.Second}

func clusterCfg(c *api.Client, key string, mode consullock.Mode) consullock.Config {
	return consullock.Config{Client: c, Key: key, Mode: mode, Lease: clusterLease,
		Holder: consullock.LocalHolder("test", ""), Tuning: consullock.Tuning{RetryDelay: 100 * time.Millisecond}}
}

// TestCluster runs the cases that need a 3-server cluster with 2 client
// agents on one such cluster (a start takes seconds), each leaving it whole
// for the next.
func TestCluster(t *testing.T) {
	cl := testcluster.StartCluster(t, 3, 2, testcluster.WithMaxConnsPerClient(5000))
	for _, c := range []struct {
		name string
		run  func(*testing.T, *testcluster.Cluster)
	}{
		{"outages", clusterOutages},
		{"holder's agent restarts", clusterHolderAgentRestarts},
		{"a thousand holders", thousandHolders},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, cl)
			cl.WaitReady(t)
		})
	}
}

// Issue 9: on a 3-server cluster, a holder keeps its lock through a leader
// kill (a new leader is elected well within its deadline), and a waiter
// with time left in its wait rides out a leader kill, a 12s quorum loss
// and a restart of its own agent: the holder fences itself during the
// quorum loss, and the waiter is granted afterwards, never before the
// holder's loss.
func clusterOutages(t *testing.T, cl *testcluster.Cluster) {
	holderAgent, waiterAgent := cl.Clients[0], cl.Clients[1]
	h := acquire(t, clusterCfg(holderAgent.Client(t), "cluster", consullock.Exclusive))

	w := clusterCfg(waiterAgent.Client(t), "cluster", consullock.Exclusive)
	w.Wait = 3 * time.Minute
	type grant struct {
		l   *consullock.Lock
		err error
		at  time.Time
	}
	granted := make(chan grant, 1)
	go func() {
		l, err := consullock.Acquire(context.Background(), w)
		granted <- grant{l, err, time.Now()}
	}()
	time.Sleep(500 * time.Millisecond)

	// The leader is killed: a new one is elected; the holder keeps its lock.
	leader := cl.Leader(t, 10*time.Second)
	leader.Kill(t)
	elected := time.Now()
	next := cl.Leader(t, 20*time.Second)
	t.Logf("leader %s killed; %s elected after %s", leader.Name, next.Name, time.Since(elected).Round(time.Millisecond))
	time.Sleep(clusterLease.TTL)
	if err := h.Context().Err(); err != nil {
		t.Fatalf("the holder lost its lock through a leader election: %v", context.Cause(h.Context()))
	}
	leader.Restart(t)

	// The waiter's agent restarts while it waits.
	waiterAgent.Kill(t)
	time.Sleep(500 * time.Millisecond)
	waiterAgent.Restart(t)

	// Quorum lost for 12s: the holder can prove nothing and fences itself;
	// nobody is granted meanwhile.
	var frozen []*testcluster.Agent
	for _, s := range cl.Servers[:2] {
		s.Freeze(t)
		frozen = append(frozen, s)
	}
	quorumLost := time.Now()
	select {
	case <-h.Context().Done():
	case <-time.After(clusterLease.TTL + 2*time.Second):
		t.Fatal("the holder did not fence itself during the quorum loss")
	}
	lostAt := time.Now()
	if !errors.Is(context.Cause(h.Context()), consullock.ErrLost) {
		t.Fatalf("holder ended with %v, want a loss", context.Cause(h.Context()))
	}
	t.Logf("holder fenced %s after the quorum was lost", lostAt.Sub(quorumLost).Round(time.Millisecond))
	select {
	case g := <-granted:
		t.Fatalf("the waiter was granted during the quorum loss (%v)", g.err)
	case <-time.After(time.Until(quorumLost.Add(12 * time.Second))):
	}
	for _, s := range frozen {
		s.Thaw(t)
	}
	// The holder's session may still live on the servers: the holder gives
	// it up, as repolock does after stopping its command.
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = h.Release(rctx)
	cancel()

	select {
	case g := <-granted:
		if g.err != nil {
			t.Fatalf("waiter with time left: %v, want the grant after the outages", g.err)
		}
		if !g.at.After(lostAt) {
			t.Fatalf("waiter granted at %s, before the holder's loss at %s", g.at, lostAt)
		}
		t.Logf("waiter granted %s after the quorum came back", time.Since(quorumLost.Add(12*time.Second)).Round(time.Millisecond))
		release(t, g.l)
	case <-time.After(2 * time.Minute):
		t.Fatal("the waiter was not granted after the outages")
	}
}

// Issue 9 fault matrix: the holder's own client agent restarts. Gracefully
// and back within the deadline, the lock is kept (the session lives on the
// catalog-only session node, not the agent's). Killed and away past the
// deadline, the holder fences itself and a competitor is granted only
// after that.
func clusterHolderAgentRestarts(t *testing.T, cl *testcluster.Cluster) {
	agent, other := cl.Clients[0], cl.Clients[1]

	h := acquire(t, clusterCfg(agent.Client(t), "agent-restart", consullock.Exclusive))
	agent.Stop() // graceful: the agent leaves the cluster
	agent.Restart(t)
	time.Sleep(clusterLease.TTL)
	if err := h.Context().Err(); err != nil {
		t.Fatalf("the holder lost its lock over a graceful restart of its agent within the deadline: %v", context.Cause(h.Context()))
	}
	release(t, h)

	h = acquire(t, clusterCfg(agent.Client(t), "agent-restart", consullock.Exclusive))
	w := clusterCfg(other.Client(t), "agent-restart", consullock.Exclusive)
	w.Wait = time.Minute
	granted := make(chan time.Time, 1)
	go func() {
		l, err := consullock.Acquire(context.Background(), w)
		if err != nil {
			t.Error(err)
			close(granted)
			return
		}
		granted <- time.Now()
		release(t, l)
	}()
	agent.Kill(t)
	select {
	case <-h.Context().Done():
	case <-time.After(clusterLease.TTL + 2*time.Second):
		t.Fatal("the holder did not fence itself with its agent gone")
	}
	fenced := time.Now()
	// As repolock does once the command's group is gone: give the session
	// up. Through the dead agent that fails, so the session expires by TTL.
	rctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = h.Release(rctx)
	cancel()
	agent.Restart(t)
	select {
	case at, ok := <-granted:
		if ok && !at.After(fenced) {
			t.Fatalf("competitor granted at %s, before the holder fenced itself at %s", at, fenced)
		}
		t.Logf("holder fenced; competitor granted %s later (the server expires the session by TTL)", at.Sub(fenced).Round(time.Millisecond))
	case <-time.After(3 * clusterLease.TTL):
		t.Fatal("competitor not granted after the holder's session expired")
	}
}
