// Package bench compares repolock with `consul lock` (built from the same
// Consul module) side by side against one real agent, and writes the table
// of medians and ratios to bench/results.md.
//
// Run it with `make bench`; it is a benchmark, not part of `make test`.
package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/internal/testcluster"
)

// samples per measurement and tool; tools alternate so drift hits both.
const samples = 31

// tool wraps one lock command line.
type tool struct {
	name string
	// argv returns the command line that runs script under key.
	argv func(key, script string) []string
	// session finds the holder's session ID in KV.
	session func(c *api.Client, key string) string
}

func tools(repolock, consul string) []tool {
	return []tool{
		{
			name: "repolock",
			argv: func(key, script string) []string {
				return []string{repolock, "exec", "-key", key, "-wait", "1m", "--", "bash", "-c", script}
			},
			session: func(c *api.Client, key string) string {
				pairs, _, _ := c.KV().List("repolock/repos/"+key+"/lock/", nil)
				for _, p := range pairs {
					if p.Session != "" {
						return p.Session
					}
				}
				return ""
			},
		},
		{
			name: "consul lock",
			argv: func(key, script string) []string {
				// -shell=false: the same bash -c as repolock's, no extra sh.
				return []string{consul, "lock", "-shell=false", "bench/" + key, "bash", "-c", script}
			},
			session: func(c *api.Client, key string) string {
				p, _, _ := c.KV().Get("bench/"+key+"/.lock", nil)
				if p == nil {
					return ""
				}
				return p.Session
			},
		},
	}
}

type result struct {
	wall, rss, handoff, destroy []float64
}

// floors are the parts of a handoff and of a destroy-to-signal that no
// wrapper controls, measured without any lock tool: Consul committing a
// session destroy and answering the blocking query on the entry it held,
// and the kernel and bash starting, ending and signalling the same
// command the tools run.
type floors struct {
	wake     []float64 // session destroy call → blocking query on its entry returns
	start    []float64 // fork → the command's first statement
	exit     []float64 // the command's last statement → its parent's wait4 returns
	signaled []float64 // kill(SIGTERM) → the command's trap runs
}

func BenchmarkCompare(b *testing.B) {
	root := testcluster.RepoRoot(b)
	repolock := testcluster.Binary(b, "repolock")
	consul := testcluster.Binary(b, "consul")
	srv := testcluster.StartServer(b)
	env := append(os.Environ(), srv.Env("")...)
	c := srv.Client(b)
	tt := tools(repolock, consul)
	res := make([]result, len(tt))
	var fl floors
	dir := b.TempDir()

	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := 0; i < samples; i++ {
			for ti, t := range tt {
				key := fmt.Sprintf("k%d-%d-%d", n, i, ti)
				res[ti].wall = append(res[ti].wall, wallTrue(b, t, env, key))
				res[ti].rss = append(res[ti].rss, peakRSS(b, t, env, key+"-rss"))
				res[ti].handoff = append(res[ti].handoff, handoff(b, t, env, dir, key+"-h"))
				res[ti].destroy = append(res[ti].destroy, destroyToSignal(b, t, env, c, dir, key+"-d"))
			}
			fl.measure(b, c, env, dir, fmt.Sprintf("floor%d-%d", n, i))
		}
	}
	b.StopTimer()

	table := render(tt, res, fl, consulVersion(b, consul))
	fmt.Print(table)
	if err := os.WriteFile(filepath.Join(root, "bench", "results.md"), []byte(table), 0o644); err != nil {
		b.Fatal(err)
	}
	for ti, t := range tt {
		b.ReportMetric(median(res[ti].wall), strings.ReplaceAll(t.name, " ", "_")+"-wall-ms")
	}
}

func command(env, argv []string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	return cmd
}

// wallTrue is the wall time of the whole lock/run/release around `true`.
func wallTrue(b *testing.B, t tool, env []string, key string) float64 {
	cmd := command(env, t.argv(key, "true"))
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", t.name, err, out)
	}
	return ms(time.Since(start))
}

// peakRSS is the peak resident memory (VmHWM) of the lock process and of
// its helpers (repolock's guard), read while the command runs, in MiB.
func peakRSS(b *testing.B, t tool, env []string, key string) float64 {
	cmd := command(env, t.argv(key, "sleep 0.6"))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	total := vmHWM(cmd.Process.Pid)
	for _, child := range children(cmd.Process.Pid) {
		if comm(child) == "repolock" { // the guard: the same binary re-executed
			total += vmHWM(child)
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%s: %v", t.name, err)
	}
	return total / 1024
}

// handoff is the time from the first holder's command end to the waiting
// holder's command start.
func handoff(b *testing.B, t tool, env []string, dir, key string) float64 {
	end, begin := filepath.Join(dir, key+"-end"), filepath.Join(dir, key+"-begin")
	first := command(env, t.argv(key, "sleep 0.3; "+stamp(end)))
	if err := first.Start(); err != nil {
		b.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	second := command(env, t.argv(key, stamp(begin)))
	if out, err := second.CombinedOutput(); err != nil {
		b.Fatalf("%s second: %v\n%s", t.name, err, out)
	}
	if err := first.Wait(); err != nil {
		b.Fatalf("%s first: %v", t.name, err)
	}
	return ms(time.Duration(readNanos(b, begin) - readNanos(b, end)))
}

// destroyToSignal is the delay from an external session destroy to the
// command's receipt of the kill signal.
func destroyToSignal(b *testing.B, t tool, env []string, c *api.Client, dir, key string) float64 {
	got, ready := filepath.Join(dir, key+"-got"), filepath.Join(dir, key+"-ready")
	// wait returns as soon as a trapped signal arrives, so the stamp is
	// taken when the signal is delivered, not after a polling sleep.
	script := fmt.Sprintf(`trap '%s; kill $!; exit 0' TERM INT; echo 1 > %s; sleep 1000 & wait`, stamp(got), ready)
	cmd := command(env, t.argv(key, script))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var session string
	deadline := time.Now().Add(10 * time.Second)
	for session == "" || !exists(ready) {
		if time.Now().After(deadline) {
			b.Fatalf("%s: holder not running:\n%s", t.name, out.String())
		}
		time.Sleep(5 * time.Millisecond)
		session = t.session(c, key)
	}
	destroyed := time.Now()
	if _, err := c.Session().Destroy(session, nil); err != nil {
		b.Fatal(err)
	}
	for !exists(got) {
		if time.Since(destroyed) > 30*time.Second {
			_ = cmd.Process.Kill()
			b.Fatalf("%s: no kill signal 30s after the destroy:\n%s", t.name, out.String())
		}
		time.Sleep(time.Millisecond)
	}
	d := time.Unix(0, readNanos(b, got)).Sub(destroyed)
	_ = cmd.Wait()
	return ms(d)
}

// measure takes one sample of each floor.
func (fl *floors) measure(b *testing.B, c *api.Client, env []string, dir, key string) {
	fl.wake = append(fl.wake, destroyWake(b, c, env, dir, key))

	// The same bash -c the tools run: a first and a last statement.
	begin, end := filepath.Join(dir, key+"-begin"), filepath.Join(dir, key+"-end")
	cmd := command(env, []string{"bash", "-c", stamp(begin) + "; " + stamp(end)})
	forked := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	reaped := time.Now()
	fl.start = append(fl.start, ms(time.Unix(0, readNanos(b, begin)).Sub(forked)))
	fl.exit = append(fl.exit, ms(reaped.Sub(time.Unix(0, readNanos(b, end)))))

	// The same trap as destroyToSignal's command.
	got, ready := filepath.Join(dir, key+"-got"), filepath.Join(dir, key+"-ready")
	cmd = command(env, []string{"bash", "-c",
		fmt.Sprintf(`trap '%s; kill $!; exit 0' TERM; echo 1 > %s; sleep 1000 & wait`, stamp(got), ready)})
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for !exists(ready) {
		time.Sleep(time.Millisecond)
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	_ = cmd.Wait()
	fl.signaled = append(fl.signaled, ms(time.Unix(0, readNanos(b, got)).Sub(sent)))
}

// destroyWake is how long Consul takes from a session destroy call to
// answering a blocking query on an entry the session held: the event both
// tools wait for in a handoff and in a destroy-to-signal. The query is made
// by another process, as the tools' are, so the caller's own handling of
// the destroy's answer does not delay the wake-up.
func destroyWake(b *testing.B, c *api.Client, env []string, dir, key string) float64 {
	id, _, err := c.Session().CreateNoChecks(&api.SessionEntry{TTL: "30s", Behavior: api.SessionBehaviorDelete}, nil)
	if err != nil {
		b.Fatal(err)
	}
	entry := "bench/floor/" + key
	if ok, _, err := c.KV().Acquire(&api.KVPair{Key: entry, Session: id}, nil); err != nil || !ok {
		b.Fatalf("acquire %s: %v %v", entry, ok, err)
	}
	_, meta, err := c.KV().Get(entry, nil)
	if err != nil {
		b.Fatal(err)
	}
	woke, ready := filepath.Join(dir, key+"-woke"), filepath.Join(dir, key+"-parked")
	watcher := command(append(env, fmt.Sprintf("%s=%s %d %s %s", watchEnv, entry, meta.LastIndex, ready, woke)),
		[]string{os.Args[0], "-test.run", "^$"})
	var out bytes.Buffer
	watcher.Stdout, watcher.Stderr = &out, &out
	if err := watcher.Start(); err != nil {
		b.Fatal(err)
	}
	for !exists(ready) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond) // the query is parked at the server
	destroyed := time.Now()
	if _, err := c.Session().Destroy(id, nil); err != nil {
		b.Fatal(err)
	}
	if err := watcher.Wait(); err != nil {
		b.Fatalf("watcher: %v\n%s", err, out.String())
	}
	return ms(time.Unix(0, readNanos(b, woke)).Sub(destroyed))
}

// watchEnv makes the bench binary a watcher: "KEY INDEX READY WOKE" — it
// writes READY, makes one blocking query on KEY from INDEX, and writes the
// time it was answered to WOKE.
const watchEnv = "REPOLOCK_BENCH_WATCH"

func TestMain(m *testing.M) {
	if v, ok := os.LookupEnv(watchEnv); ok {
		os.Exit(watch(v))
	}
	os.Exit(m.Run())
}

func watch(arg string) int {
	f := strings.Fields(arg)
	c, err := api.NewClient(api.DefaultConfig())
	if err != nil || len(f) != 4 {
		fmt.Fprintln(os.Stderr, "watcher:", arg, err)
		return 2
	}
	index, _ := strconv.ParseUint(f[1], 10, 64)
	// Warm up the connection and the answer's code path, as a tool's
	// earlier requests would have.
	if _, _, err := c.KV().Get(f[0], nil); err != nil {
		fmt.Fprintln(os.Stderr, "watcher:", err)
		return 2
	}
	q := &api.QueryOptions{WaitIndex: index, WaitTime: time.Minute}
	if err := os.WriteFile(f[2], []byte("1"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "watcher:", err)
		return 2
	}
	if _, _, err := c.KV().Get(f[0], q); err != nil {
		fmt.Fprintln(os.Stderr, "watcher:", err)
		return 2
	}
	if err := os.WriteFile(f[3], []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "watcher:", err)
		return 2
	}
	return 0
}

// stamp is a bash snippet writing the current time in nanoseconds to file
// with builtins only ($EPOCHREALTIME), so no fork sits between the event
// and the stamp.
func stamp(file string) string {
	return fmt.Sprintf(`t=${EPOCHREALTIME/./}; echo "${t}000" > %s`, file)
}

// consulVersion is the first line of `consul version`, e.g. "Consul v1.16.3".
func consulVersion(b *testing.B, consul string) string {
	out, err := exec.Command(consul, "version").Output()
	if err != nil {
		b.Fatalf("%s version: %v", consul, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

func render(tt []tool, res []result, fl floors, version string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Median of %d runs each, alternating, against one %s dev agent on loopback\n", samples, version)
	fmt.Fprintf(&sb, "(`make bench`, %s, %d CPUs). Ratio = repolock / consul lock; lower is better.\n\n",
		time.Now().UTC().Format("2006-01-02"), numCPU())
	fmt.Fprintf(&sb, "| measure | repolock | consul lock | ratio |\n| --- | --- | --- | --- |\n")
	rows := []struct {
		name string
		get  func(result) []float64
		unit string
	}{
		{"wall time of a lock around `true`", func(r result) []float64 { return r.wall }, "ms"},
		{"peak RSS while holding (repolock: + guard)", func(r result) []float64 { return r.rss }, "MiB"},
		{"handoff latency between successive holders", func(r result) []float64 { return r.handoff }, "ms"},
		{"external session destroy → kill signal", func(r result) []float64 { return r.destroy }, "ms"},
	}
	for _, row := range rows {
		a, b := median(row.get(res[0])), median(row.get(res[1]))
		fmt.Fprintf(&sb, "| %s | %.1f %s | %.1f %s | %.2f× |\n", row.name, a, row.unit, b, row.unit, a/b)
	}

	wake, start, exit, sig := median(fl.wake), median(fl.start), median(fl.exit), median(fl.signaled)
	fmt.Fprintf(&sb, "\nFloors, measured in the same run without any lock tool (%d samples each):\n", len(fl.wake))
	fmt.Fprintf(&sb, "Consul from a session destroy call to the blocking query on its entry answering %.2f ms;\n", wake)
	fmt.Fprintf(&sb, "fork → first statement of the `bash -c` command %.2f ms; its last statement → wait4 returns %.2f ms;\n", start, exit)
	fmt.Fprintf(&sb, "kill(SIGTERM) → its trap runs %.2f ms. A handoff needs at least exit + one write's wake + start,\n", sig)
	fmt.Fprintf(&sb, "a destroy-to-signal at least the wake + the signal.\n\n")
	fmt.Fprintf(&sb, "| measure | floor | 0.5× consul lock | repolock − floor | consul lock − floor |\n| --- | --- | --- | --- | --- |\n")
	for _, row := range []struct {
		name  string
		floor float64
		get   func(result) []float64
	}{
		{"handoff", exit + wake + start, func(r result) []float64 { return r.handoff }},
		{"destroy → kill signal", wake + sig, func(r result) []float64 { return r.destroy }},
	} {
		a, b := median(row.get(res[0])), median(row.get(res[1]))
		fmt.Fprintf(&sb, "| %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms |\n", row.name, row.floor, b/2, a-row.floor, b-row.floor)
	}
	return sb.String()
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func exists(p string) bool {
	b, err := os.ReadFile(p)
	return err == nil && len(b) > 0
}

func readNanos(b *testing.B, p string) int64 {
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		b.Fatalf("%s: %v", p, err)
	}
	return n
}

// vmHWM reads a process's peak resident set size in KiB.
func vmHWM(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		data, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func comm(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(data))
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}
