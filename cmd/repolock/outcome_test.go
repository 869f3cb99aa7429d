package main_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/repolock/repolock/internal/supervise"
	"github.com/repolock/repolock/internal/testcluster"
)

// Issue 15 acceptance 3: every outcome of `repolock run`, driven for real,
// reaches its four readers alike: the exit code, the metrics textfile's
// outcome, the hook event (with REPOLOCK_OUTCOME and REPOLOCK_EXIT_CODE)
// and, where the lock was granted, the last record's exit and class.
func TestOutcomeReadersAgree(t *testing.T) {
	srv := testcluster.StartServer(t)
	acl := testcluster.StartServer(t, testcluster.WithACL())
	dir := t.TempDir()
	textdir, hooklog, ready := filepath.Join(dir, "text"), filepath.Join(dir, "hooks"), filepath.Join(dir, "ready")
	must(t, os.Mkdir(textdir, 0o755))
	head := fmt.Sprintf(`
metrics {
  textfile = %q
}
lock {
  ttl          = "3s"
  kill_timeout = "1s"
  wait         = "0s"
}
hook "record" {
  on      = ["success", "failure", "lost", "busy"]
  command = ["sh", "-c", "echo \"$REPOLOCK_JOB $REPOLOCK_EVENT $REPOLOCK_OUTCOME $REPOLOCK_EXIT_CODE\" >> %s"]
}
repository "o" {
  tool     = "exec"
  location = "outcomes"
  lock_key = "outcomes"
}
`, textdir, hooklog)
	job := func(name, script string) string {
		return fmt.Sprintf("job %q {\n  repository = \"o\"\n  mode = \"exclusive\"\n  command = [\"sh\", \"-c\", %q]\n}\n", name, script)
	}
	hold := "echo 1 > $READY; sleep 30"
	cfg := writeConfig(t, head+job("success", "true")+job("failure", "exit 3")+job("busy", "true")+
		job("lost", hold)+job("guard-died", hold)+job("denied", "true")+
		job("interrupted", "trap 'exit 0' TERM; echo 1 > $READY; while :; do sleep 0.05; done"))
	unreachable := writeConfig(t, fmt.Sprintf("consul {\n  address = \"127.0.0.1:%d\"\n}\n", testcluster.FreePort(t, "127.0.0.1"))+
		strings.Replace(head, `wait         = "0s"`, `wait         = "1s"`, 1)+job("unreachable", "true"))
	env := append(srv.Env(""), "READY="+ready)

	// mid acts on a run whose command has started.
	mid := func(name string, act func(p *proc)) func() (int, string) {
		return func() (int, string) {
			os.Remove(ready)
			p := start(t, env, "run", "-config", cfg, name)
			waitFile(t, ready, 20*time.Second)
			act(p)
			return p.wait(t, 20*time.Second), p.stderr.String()
		}
	}
	runJob := func(e []string, config, name string) func() (int, string) {
		return func() (int, string) { return runRepolock(t, e, "run", "-config", config, name) }
	}
	cases := []struct {
		job           string
		run           func() (int, string)
		code          int
		metric, event string
		class         string // of the last record; "" when the run was never granted
	}{
		{"success", runJob(env, cfg, "success"), 0, "success", "success", "success"},
		{"failure", runJob(env, cfg, "failure"), 3, "failure", "failure", "error"}, // the exec tool's name for any non-zero code
		{"busy", func() (int, string) {
			os.Remove(ready)
			holder := start(t, env, "exec", "-key", "outcomes", "--", "sh", "-c", hold)
			waitFile(t, ready, 20*time.Second)
			defer func() { _ = holder.cmd.Process.Signal(syscall.SIGTERM); holder.wait(t, 20*time.Second) }()
			return runRepolock(t, env, "run", "-config", cfg, "busy")
		}, 75, "busy", "busy", ""},
		{"lost", mid("lost", func(*proc) {
			if code, out := runRepolock(t, env, "break", "outcomes"); code != 0 {
				t.Fatalf("break: exit %d\n%s", code, out)
			}
		}), 76, "lost", "lost", "lock lost"},
		{"interrupted", mid("interrupted", func(p *proc) { must(t, p.cmd.Process.Signal(syscall.SIGTERM)) }), 143, "interrupted", "failure", "interrupted"},
		{"guard-died", mid("guard-died", func(p *proc) { must(t, syscall.Kill(guardOf(t, p.cmd.Process.Pid), syscall.SIGKILL)) }), 70, "failure", "failure", "unknown"},
		{"unreachable", runJob(env, unreachable, "unreachable"), 69, "failure", "failure", ""},
		{"denied", runJob(append(acl.Env(""), "READY="+ready), cfg, "denied"), 77, "failure", "failure", ""},
	}
	c := srv.Client(t)
	for _, tc := range cases {
		began := time.Now()
		code, out := tc.run()
		t.Logf("%-12s exit %3d after %s", tc.job, code, time.Since(began).Round(time.Millisecond))
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d:\n%s", tc.job, code, tc.code, out)
			continue
		}
		if got := runsTotal(t, textdir, tc.job); got != tc.metric {
			t.Errorf("%s: metrics outcome %q, want %q", tc.job, got, tc.metric)
		}
		if got, want := lastHook(t, hooklog, tc.job), fmt.Sprintf("%s %s %s %d", tc.job, tc.event, tc.metric, tc.code); got != want {
			t.Errorf("%s: hook saw %q, want %q", tc.job, got, want)
		}
		if tc.class != "" {
			if l := lastRun(t, c, "outcomes"); l.Job != tc.job || l.Exit != tc.code || l.Class != tc.class {
				t.Errorf("%s: last record job %q exit %d class %q, want exit %d class %q", tc.job, l.Job, l.Exit, l.Class, tc.code, tc.class)
			}
		}
	}
	// An invalid config: 78, and nothing runs, so no reader but the exit
	// code hears of it.
	bad := writeConfig(t, head+job("config", "true")+"job \"x\" {\n  repository = \"missing\"\n  command = [\"true\"]\n}\n")
	if code, out := runRepolock(t, env, "run", "-config", bad, "config"); code != 78 {
		t.Errorf("config: exit %d, want 78:\n%s", code, out)
	}
	if got := runsTotal(t, textdir, "config"); got != "" {
		t.Errorf("config: metrics written (%s) for a config that does not load", got)
	}
}

// runsTotal is the one outcome whose repolock_runs_total is non-zero in
// the job's textfile, "" when there is none.
func runsTotal(t *testing.T, dir, job string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.prom"))
	var found []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(bytes.NewReader(b))
		must(t, err)
		mf := mfs["repolock_runs_total"]
		if mf == nil {
			continue
		}
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["job"] == job && m.GetCounter().GetValue() > 0 {
				found = append(found, labels["outcome"])
			}
		}
	}
	if len(found) > 1 {
		t.Fatalf("job %s counted under %v", job, found)
	}
	return strings.Join(found, "")
}

// lastHook is the hook log's last line for job.
func lastHook(t *testing.T, path, job string) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	last := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, job+" ") {
			last = l
		}
	}
	return last
}

// guardOf is the pid of repolock pid's guard process.
func guardOf(t *testing.T, pid int) int {
	t.Helper()
	kids, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range kids {
		b, _ := os.ReadFile(f)
		for _, p := range strings.Fields(string(b)) {
			cl, _ := os.ReadFile("/proc/" + p + "/cmdline")
			if strings.Contains(string(cl), supervise.GuardArg) {
				var n int
				fmt.Sscan(p, &n)
				return n
			}
		}
	}
	t.Fatalf("no guard process under repolock %d", pid)
	return 0
}
