package testcluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// FaultProxy is a TCP proxy (Toxiproxy, as a library) between repolock or
// an agent and another agent, which a test can delay, cut or reset.
type FaultProxy struct {
	Addr string // host:port it listens on
	p    *toxiproxy.Proxy
}

// toxiproxies is the one Toxiproxy server every FaultProxy belongs to.
var toxiproxies = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())

// StartFaultProxy starts a proxy from listen (host:port; port 0 for any)
// to upstream, stopped by t.Cleanup.
func StartFaultProxy(t testing.TB, name, listen, upstream string) *FaultProxy {
	t.Helper()
	p := toxiproxy.NewProxy(toxiproxies, name, listen, upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("testcluster: proxy %s to %s: %v", name, upstream, err)
	}
	t.Cleanup(p.Stop)
	return &FaultProxy{Addr: p.Listen, p: p}
}

// The names of the toxics this harness adds.
const (
	cutToxic     = "cut"
	latencyToxic = "latency"
)

// Cut drops every byte both ways, on the connections open now and on new
// ones, until Heal: as a link that fails, not one that refuses (nothing
// answers, nothing is reset).
func (f *FaultProxy) Cut(t testing.TB) {
	t.Helper()
	f.toxic(t, cutToxic, "timeout", `"timeout": 0`)
}

// Heal ends a Cut. The connections open during the cut lost bytes, so
// they are closed (Reset): their ends open new ones, as after an outage.
func (f *FaultProxy) Heal(t testing.TB) {
	t.Helper()
	f.Reset(t) // first: bytes held back during the cut must not arrive late
	f.removeToxic(t, cutToxic)
}

// Reset closes every connection through the proxy; new ones are taken at
// once, each with a new TLS handshake.
func (f *FaultProxy) Reset(t testing.TB) {
	t.Helper()
	f.p.Stop()
	if err := f.p.Start(); err != nil {
		t.Fatalf("testcluster: restart proxy %s: %v", f.p.Name, err)
	}
}

// Latency delays every byte by d each way (a round trip of 2d); 0
// removes the delay.
func (f *FaultProxy) Latency(t testing.TB, d time.Duration) {
	t.Helper()
	f.removeToxic(t, latencyToxic)
	if d > 0 {
		f.toxic(t, latencyToxic, "latency", fmt.Sprintf(`"latency": %d`, d.Milliseconds()))
	}
}

// toxic adds a toxic of typ with attrs to both directions.
func (f *FaultProxy) toxic(t testing.TB, name, typ, attrs string) {
	t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		js := fmt.Sprintf(`{"name": %q, "type": %q, "stream": %q, "attributes": {%s}}`, name+"-"+stream, typ, stream, attrs)
		if _, err := f.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			t.Fatalf("testcluster: toxic %s on %s: %v", name, f.p.Name, err)
		}
	}
}

func (f *FaultProxy) removeToxic(t testing.TB, name string) {
	t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		if f.p.Toxics.GetToxic(name+"-"+stream) == nil {
			continue
		}
		if err := f.p.Toxics.RemoveToxic(t.Context(), name+"-"+stream); err != nil {
			t.Fatalf("testcluster: remove toxic %s from %s: %v", name, f.p.Name, err)
		}
	}
}
