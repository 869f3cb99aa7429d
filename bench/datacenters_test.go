package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// dcSamples per path; a 200 ms WAN makes each sample take seconds.
const dcSamples = 11

// BenchmarkDatacenters measures `repolock exec` against the federated pair
// of testcluster.StartFederation, the locks in dc1: from dc1's own agent,
// and from dc2's client agent across the WAN with 0 and 200 ms of injected
// latency each way. It writes bench/datacenters.md:
//   - acquire: repolock's start → the command's first statement;
//   - release: the command's last statement → repolock's exit;
//   - handoff: a holder's command ends → the next holder's command (in
//     the same datacenter as the first) starts.
func BenchmarkDatacenters(b *testing.B) {
	root := testcluster.RepoRoot(b)
	repolock := testcluster.Binary(b, "repolock")
	dir := b.TempDir()
	type path struct {
		name    string
		agent   *testcluster.Agent
		latency time.Duration
	}
	type sample struct{ acquire, release, handoff []float64 }
	var table strings.Builder
	for n := 0; n < b.N; n++ {
		f := testcluster.StartFederation(b)
		paths := []path{
			{"dc1 agent → dc1 (same datacenter)", f.DC1.Servers[0], 0},
			{"dc2 agent → dc1, WAN + 0 ms", f.DC2.Clients[0], 0},
			{"dc2 agent → dc1, WAN + 200 ms each way", f.DC2.Clients[0], 200 * time.Millisecond},
		}
		res := make([]sample, len(paths))
		for pi, p := range paths {
			f.WANLatency(b, p.latency)
			env := append(os.Environ(), p.agent.Env("")...)
			flags := []string{"-datacenter", testcluster.DC1}
			if p.agent == f.DC2.Clients[0] {
				flags = append(flags, "-session-address", f.DC2.Servers[0].Addr) // a client agent's sessions in dc1
			}
			argv := func(key, script string) []string {
				return append(append([]string{repolock, "exec"}, flags...), "-key", key, "-wait", "1m", "--", "bash", "-c", script)
			}
			for i := 0; i < dcSamples; i++ {
				key := fmt.Sprintf("dc-%d-%d-%d", n, pi, i)
				first, last := filepath.Join(dir, key+"-first"), filepath.Join(dir, key+"-last")
				cmd := command(env, argv(key, stamp(first)+"; "+stamp(last)))
				began := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%s: %v\n%s", p.name, err, out)
				}
				ended := time.Now()
				res[pi].acquire = append(res[pi].acquire, ms(time.Duration(readNanos(b, first)-began.UnixNano())))
				res[pi].release = append(res[pi].release, ms(time.Duration(ended.UnixNano()-readNanos(b, last))))
				res[pi].handoff = append(res[pi].handoff, queuedHandoff(b, f, env, argv, dir, key+"-h"))
			}
		}
		f.WANLatency(b, 0)
		fmt.Fprintf(&table, "Median of %d runs each of `repolock exec -datacenter dc1` on a federated pair on loopback: dc1 with 3\n", dcSamples)
		fmt.Fprintf(&table, "servers, dc2 with a server and a client agent (sessions created through dc2's server); latency injected on dc1's WAN RPC (`make bench`, %s, %d CPUs).\n",
			time.Now().UTC().Format("2006-01-02"), numCPU())
		table.WriteString("Ratio = this path / the same-datacenter path.\n\n")
		table.WriteString("| path | acquire | ratio | release | ratio | handoff | ratio |\n| --- | --- | --- | --- | --- | --- | --- |\n")
		base := res[0]
		for pi, p := range paths {
			r := res[pi]
			fmt.Fprintf(&table, "| %s | %.1f ms | %.2f× | %.1f ms | %.2f× | %.1f ms | %.2f× |\n", p.name,
				median(r.acquire), median(r.acquire)/median(base.acquire), median(r.release), median(r.release)/median(base.release),
				median(r.handoff), median(r.handoff)/median(base.handoff))
		}
	}
	fmt.Print(table.String())
	if err := os.WriteFile(filepath.Join(root, "bench", "datacenters.md"), []byte(table.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

// queuedHandoff is the time from a holder's command end to the next
// holder's command start, the next one queued in dc1 before the first
// ends: across a slow WAN an acquire takes longer than the fixed pause of
// handoff, so the first holder ends only once dc1 shows both entries.
func queuedHandoff(b *testing.B, f *testcluster.Federation, env []string, argv func(key, script string) []string, dir, key string) float64 {
	started, release := filepath.Join(dir, key+"-started"), filepath.Join(dir, key+"-go")
	end, begin := filepath.Join(dir, key+"-end"), filepath.Join(dir, key+"-begin")
	first := command(env, argv(key, fmt.Sprintf("echo 1 > %s; while [ ! -e %s ]; do sleep 0.01; done; %s", started, release, stamp(end))))
	if err := first.Start(); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !exists(started); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("first holder's command did not start")
		}
	}
	second := command(env, argv(key, stamp(begin)))
	if err := second.Start(); err != nil {
		b.Fatal(err)
	}
	kv := f.DC1.Servers[1].Client(b).KV()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if pairs, _, err := kv.Keys(consullock.RepoPrefix("", key)+"lock/", "", nil); err == nil && len(pairs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("second holder did not queue in dc1")
		}
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := first.Wait(); err != nil {
		b.Fatalf("first holder: %v", err)
	}
	if err := second.Wait(); err != nil {
		b.Fatalf("second holder: %v", err)
	}
	return ms(time.Duration(readNanos(b, begin) - readNanos(b, end)))
}
