package main_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/repolock/repolock/internal/testcluster"
)

// promBinary finds a Debian Prometheus tool, failing with how to get it.
func promBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run `make prometheus-tools` (installs Debian's prometheus-node-exporter, prometheus-pushgateway and prometheus)", name)
	}
	return p
}

// startDaemon runs a Prometheus daemon on a free loopback port until the
// test ends, and returns its base URL once it answers.
func startDaemon(t *testing.T, bin string, args ...string) string {
	t.Helper()
	port := testcluster.FreePort(t, "127.0.0.1")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, append([]string{"--web.listen-address=" + addr}, args...)...)
	out := &testcluster.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url + "/metrics"); err == nil {
			resp.Body.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer:\n%s", bin, out)
		}
	}
}

// scrape parses a /metrics page.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return mfs
}

// value is the value of the series of name whose labels include want, and
// whether there is one.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, m := range mfs[name].GetMetric() {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			match = match && found
		}
		if match {
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// Issue 10 acceptances 1 and 2: node_exporter's textfile collector and a
// Pushgateway, both real, show the runs' metrics: success, failure, busy
// and a lost lock; the last success survives a later failure; a second
// job's push does not erase the first's.
func TestMetricsNodeExporterAndPushgateway(t *testing.T) {
	textdir := t.TempDir()
	node := startDaemon(t, promBinary(t, "prometheus-node-exporter"),
		"--collector.disable-defaults", "--collector.textfile", "--collector.textfile.directory="+textdir)
	gw := startDaemon(t, promBinary(t, "prometheus-pushgateway"))
	srv := testcluster.StartServer(t)
	env := srv.Env("")
	cfg := writeConfig(t, fmt.Sprintf(`
metrics {
  textfile    = %q
  pushgateway = %q
}
lock {
  ttl          = "2s"
  renew_interval = "500ms"
  kill_timeout = "500ms"
  margin       = "300ms"
  wait         = "0s"
}
repository "m" {
  tool     = "exec"
  location = "metrics-repo"
}
job "flaky" {
  repository = "m"
  mode       = "exclusive"
  command    = ["sh", "-c", "exit $FLAKY"]
}
job "hold" {
  repository = "m"
  mode       = "exclusive"
  command    = ["sh", "-c", "echo 1 > $READY; sleep 30"]
}
`, textdir, gw))
	job := func(name string) map[string]string { return map[string]string{"job": name, "repository": "m"} }

	if code, out := runRepolock(t, append(env, "FLAKY=0"), "run", "-config", cfg, "flaky"); code != 0 {
		t.Fatalf("flaky (success): exit %d\n%s", code, out)
	}
	m := scrape(t, node)
	success, ok := value(m, "repolock_last_success_timestamp_seconds", job("flaky"))
	if !ok || success < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("no recent last success after a successful run: %v %v", success, ok)
	}
	if code, _ := runRepolock(t, append(env, "FLAKY=3"), "run", "-config", cfg, "flaky"); code != 3 {
		t.Fatalf("flaky (failure): exit %d, want 3", code)
	}
	// Busy: another run holds the repository.
	ready := filepath.Join(t.TempDir(), "ready")
	holder := start(t, append(env, "READY="+ready), "run", "-config", cfg, "hold")
	waitFile(t, ready, 10*time.Second)
	if code, _ := runRepolock(t, append(env, "FLAKY=0"), "run", "-config", cfg, "flaky"); code != 75 {
		t.Fatalf("flaky (busy): exit %d, want 75", code)
	}
	// Lost: an operator breaks the holder's lock.
	if code, out := runRepolock(t, env, "break", "-config", cfg, "m"); code != 0 {
		t.Fatalf("break: %d\n%s", code, out)
	}
	if code := holder.wait(t, 20*time.Second); code != 76 {
		t.Fatalf("hold after a break: exit %d, want 76", code)
	}

	m = scrape(t, node)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"repolock_last_success_timestamp_seconds", job("flaky"), success}, // survives the failure
		{"repolock_last_exit_code", job("flaky"), 75},
		{"repolock_runs_total", map[string]string{"job": "flaky", "outcome": "success"}, 1},
		{"repolock_runs_total", map[string]string{"job": "flaky", "outcome": "failure"}, 1},
		{"repolock_runs_total", map[string]string{"job": "flaky", "outcome": "busy"}, 1},
		{"repolock_runs_total", map[string]string{"job": "hold", "outcome": "lost"}, 1},
		{"repolock_lock_lost_total", job("hold"), 1},
		{"repolock_last_exit_code", job("hold"), 76},
		{"repolock_build_info", map[string]string{}, 1},
	} {
		if got, ok := value(m, c.name, c.labels); !ok || got != c.want {
			t.Errorf("node_exporter: %s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := value(m, "repolock_last_lock_wait_seconds", job("flaky")); !ok {
		t.Error("node_exporter: no repolock_last_lock_wait_seconds")
	}

	// The Pushgateway holds one group per job, both at once.
	p := scrape(t, gw)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"repolock_last_exit_code", map[string]string{"job": "flaky", "repository": "m"}, 75},
		{"repolock_last_exit_code", map[string]string{"job": "hold", "repository": "m"}, 76},
		{"repolock_last_success_timestamp_seconds", map[string]string{"job": "flaky"}, success},
		{"repolock_runs_total", map[string]string{"job": "flaky", "outcome": "failure"}, 1},
	} {
		if got, ok := value(p, c.name, c.labels); !ok || got != c.want {
			t.Errorf("pushgateway: %s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}

// Issue 10 acceptance 3: 50 runs of different jobs at once write one
// textfile directory; every file parses at every moment sampled, and none
// is lost.
func TestMetricsConcurrentTextfiles(t *testing.T) {
	srv := testcluster.StartServer(t)
	textdir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "metrics {\n  textfile = %q\n}\n", textdir)
	const n = 50
	for i := 0; i < n; i++ {
		fmt.Fprintf(&cfg, "repository \"r%d\" {\n  tool = \"exec\"\n  location = \"r%d\"\n}\n", i, i)
		fmt.Fprintf(&cfg, "job \"j%d\" {\n  repository = \"r%d\"\n  mode = \"shared\"\n  command = [\"true\"]\n}\n", i, i)
	}
	path := writeConfig(t, cfg.String())
	stop := make(chan struct{})
	var samples, parsed int
	var sampleErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			files, _ := filepath.Glob(filepath.Join(textdir, "*.prom"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					continue // replaced between the glob and the read
				}
				p := expfmt.NewTextParser(model.UTF8Validation)
				if _, err := p.TextToMetricFamilies(bytes.NewReader(b)); err != nil && sampleErr == nil {
					sampleErr = fmt.Errorf("%s: %v", f, err)
				}
				parsed++
			}
			samples++
		}
	}()
	procs := make([]*proc, n)
	for i := range procs {
		procs[i] = start(t, srv.Env(""), "run", "-config", path, fmt.Sprintf("j%d", i))
	}
	for i, p := range procs {
		if code := p.wait(t, 2*time.Minute); code != 0 {
			t.Errorf("j%d: exit %d\n%s", i, code, p.stderr)
		}
	}
	close(stop)
	wg.Wait()
	if sampleErr != nil {
		t.Fatalf("a textfile did not parse while the runs wrote: %v", sampleErr)
	}
	files, _ := filepath.Glob(filepath.Join(textdir, "*.prom"))
	if len(files) != n {
		t.Fatalf("%d textfiles, want %d", len(files), n)
	}
	t.Logf("%d samples of the directory, %d files parsed, all valid", samples, parsed)
}

// Issue 10 acceptance 6: the shipped alerting rules pass promtool.
func TestAlertingRules(t *testing.T) {
	out, err := exec.Command(promBinary(t, "promtool"), "check", "rules", filepath.Join("..", "..", "jobspecs", "repolock.rules.yml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
