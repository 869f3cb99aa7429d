package testcluster

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Federation is two WAN-federated Consul datacenters on loopback: DC1, the
// authoritative one, with three servers (so its leader can be killed), and
// DC2 with one server and a client agent.
//
// Only the traffic between the datacenters can be faulted. dc1's servers
// gossip on the WAN directly (serf WAN on 127.0.1.N), but they advertise
// their RPC port at that WAN address, where a Toxiproxy proxy forwards to
// the real port on 127.0.0.N. So every request dc2 forwards to dc1 (a
// session renewal, a KV read) crosses a proxy the test controls, while Raft
// and every request inside dc1 do not: CutWAN and WANLatency leave each
// datacenter healthy inside.
type Federation struct {
	DC1, DC2 *Cluster
	wan      []*FaultProxy
}

// The datacenters of a Federation.
const (
	DC1 = "dc1"
	DC2 = "dc2"
)

// StartFederation starts the two datacenters, WAN-joined, and waits until
// every agent is ready and dc2's client agent can read dc1's KV. An agent
// that exits during the start (a port taken first) starts the whole pair
// again on new ports, up to three times.
func StartFederation(t testing.TB) *Federation {
	t.Helper()
	var f *Federation
	tries(t, "federation start", func() ([]*Agent, error) {
		f = launchFederation(t)
		agents := append(f.DC1.agents(), f.DC2.agents()...)
		err := waitAgents(90*time.Second, agents...)
		if err == nil {
			err = f.waitWAN(60 * time.Second)
		}
		if err != nil {
			for _, p := range f.wan {
				p.p.Stop() // the next try listens on new ports
			}
		}
		return agents, err
	})
	return f
}

func launchFederation(t testing.TB) *Federation {
	t.Helper()
	type plan struct {
		lan, wan                    string // hosts
		http, serfLAN, serfWAN, rpc int
	}
	var dc1 []plan
	for i := 1; i <= 3; i++ {
		p := FreePorts(t, fmt.Sprintf("127.0.0.%d", i), 4)
		dc1 = append(dc1, plan{fmt.Sprintf("127.0.0.%d", i), fmt.Sprintf("127.0.1.%d", i), p[0], p[1], p[2], p[3]})
	}
	p := FreePorts(t, "127.0.0.4", 4)
	dc2srv := plan{"127.0.0.4", "127.0.0.4", p[0], p[1], p[2], p[3]}
	p = FreePorts(t, "127.0.0.5", 2)
	dc2cli := plan{lan: "127.0.0.5", http: p[0], serfLAN: p[1]}

	var wanJoins, lanJoins []string
	for _, s := range dc1 {
		wanJoins = append(wanJoins, "-retry-join-wan", net.JoinHostPort(s.wan, fmt.Sprint(s.serfWAN)))
		lanJoins = append(lanJoins, "-retry-join", net.JoinHostPort(s.lan, fmt.Sprint(s.serfLAN)))
	}
	wanJoins = append(wanJoins, "-retry-join-wan", net.JoinHostPort(dc2srv.wan, fmt.Sprint(dc2srv.serfWAN)))

	f := &Federation{DC1: &Cluster{}, DC2: &Cluster{}}
	for i, s := range dc1 {
		f.wan = append(f.wan, StartFaultProxy(t, fmt.Sprintf("wan-dc1-server%d-%d", i+1, s.rpc),
			net.JoinHostPort(s.wan, fmt.Sprint(s.rpc)), net.JoinHostPort(s.lan, fmt.Sprint(s.rpc))))
	}

	server := func(dc, role string, s plan, expect int, joins []string) *Agent {
		hcl := fmt.Sprintf(`
datacenter = %q
primary_datacenter = %q
ports { http = %d, serf_lan = %d, serf_wan = %d, server = %d, dns = -1, grpc = -1, grpc_tls = -1 }
serf_wan = %q
advertise_addr_wan = %q
session_ttl_min = "1s"
log_level = "warn"
performance { raft_multiplier = 1 }
`, dc, DC1, s.http, s.serfLAN, s.serfWAN, s.rpc, s.wan, s.wan)
		args := append([]string{"-data-dir", t.TempDir(), "-hcl", hcl, "-retry-interval", "200ms", "-retry-interval-wan", "200ms",
			"-server", "-bootstrap-expect", fmt.Sprint(expect)}, joins...)
		return start(t, dc+"-"+role, s.lan, s.serfLAN, s.http, args...)
	}
	for i, s := range dc1 {
		f.DC1.Servers = append(f.DC1.Servers, server(DC1, fmt.Sprintf("server%d", i+1), s, 3, append(append([]string{}, lanJoins...), wanJoins...)))
	}
	f.DC2.Servers = append(f.DC2.Servers, server(DC2, "server", dc2srv, 1, wanJoins))
	hcl := fmt.Sprintf(`
datacenter = %q
primary_datacenter = %q
ports { http = %d, serf_lan = %d, serf_wan = -1, dns = -1, grpc = -1, grpc_tls = -1 }
log_level = "warn"
`, DC2, DC1, dc2cli.http, dc2cli.serfLAN)
	f.DC2.Clients = append(f.DC2.Clients, start(t, DC2+"-client", dc2cli.lan, dc2cli.serfLAN, dc2cli.http,
		"-data-dir", t.TempDir(), "-hcl", hcl, "-retry-interval", "200ms",
		"-retry-join", net.JoinHostPort(dc2srv.lan, fmt.Sprint(dc2srv.serfLAN))))
	return f
}

// waitWAN waits until dc2's client agent reads dc1's KV, through dc2's
// server and the WAN proxies.
func (f *Federation) waitWAN(limit time.Duration) error {
	c := f.DC2.Clients[0].plainClient()
	var err error
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, a := range append(f.DC1.agents(), f.DC2.agents()...) {
			if a.stoppedNow() {
				return fmt.Errorf("testcluster: consul %s %w:\n%s", a.Name, errExited, a.logBuf.String())
			}
		}
		if _, _, err = c.KV().List("repolock/", &api.QueryOptions{Datacenter: DC1}); err == nil {
			return nil
		}
	}
	return fmt.Errorf("testcluster: dc2 cannot read dc1's KV after %s: %v\ndc2 server log:\n%s", limit, err, f.DC2.Servers[0].Logs())
}

// CutWAN holds back every byte of the RPC between the datacenters, both
// ways, until HealWAN (FaultProxy.Cut on each of dc1's WAN proxies). WAN
// gossip is not cut, so dc2 still sees dc1's servers alive and forwards
// into the cut, where a request hangs until its timeout; the "No path to
// datacenter" answer of a WAN whose gossip failed too is not exercised.
func (f *Federation) CutWAN(t testing.TB) {
	t.Helper()
	for _, p := range f.wan {
		p.Cut(t)
	}
}

// HealWAN ends a CutWAN; the connections of the cut are closed.
func (f *Federation) HealWAN(t testing.TB) {
	t.Helper()
	for _, p := range f.wan {
		p.Heal(t)
	}
}

// WANLatency delays every byte between the datacenters by d each way (a
// round trip of 2d); 0 removes the delay.
func (f *Federation) WANLatency(t testing.TB, d time.Duration) {
	t.Helper()
	for _, p := range f.wan {
		p.Latency(t, d)
	}
}
