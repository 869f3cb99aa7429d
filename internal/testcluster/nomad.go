package testcluster

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Nomad is one running Nomad dev agent (server and client in one) wired to
// a test Consul agent, with raw_exec enabled.
type Nomad struct {
	Addr    string // http://host:port of the HTTP API
	DataDir string
	cmd     *exec.Cmd
	logBuf  *SyncBuffer
	stopped chan struct{}
}

// StartNomad starts a Nomad dev agent on 127.0.0.1 that uses consul for
// its templates, with the cloud fingerprinters denied (they would wait for
// metadata services that are not there), and waits until its client node is
// ready.
func StartNomad(t testing.TB, consul *Agent) *Nomad {
	t.Helper()
	bin := Binary(t, "nomad")
	p := FreePorts(t, "127.0.0.1", 3)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.hcl")
	hcl := fmt.Sprintf(`
bind_addr = "127.0.0.1"
data_dir  = %q
ports { http = %d, rpc = %d, serf = %d }
consul { address = %q }
client {
  options { "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean" }
}
plugin "raw_exec" { config { enabled = true } }
log_level = "WARN"
`, filepath.Join(dir, "data"), p[0], p[1], p[2], consul.Addr)
	if err := os.WriteFile(cfg, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &Nomad{
		Addr:    fmt.Sprintf("http://127.0.0.1:%d", p[0]),
		DataDir: filepath.Join(dir, "data"),
		cmd:     exec.Command(bin, "agent", "-dev", "-config", cfg),
		logBuf:  &SyncBuffer{},
		stopped: make(chan struct{}),
	}
	n.cmd.Stdout, n.cmd.Stderr = n.logBuf, n.logBuf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("testcluster: start nomad: %v", err)
	}
	go func() {
		_ = n.cmd.Wait()
		close(n.stopped)
	}()
	t.Cleanup(n.Stop)
	n.waitReady(t, 60*time.Second)
	return n
}

func (n *Nomad) waitReady(t testing.TB, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-n.stopped:
			t.Fatalf("testcluster: nomad exited early:\n%s", n.logBuf.String())
		default:
		}
		var nodes []struct{ Status string }
		if n.get("/v1/nodes", &nodes) == nil && len(nodes) > 0 && nodes[0].Status == "ready" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("testcluster: nomad not ready after %s:\n%s", limit, n.logBuf.String())
}

// get decodes a GET of the HTTP API into out.
func (n *Nomad) get(path string, out any) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(n.Addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Get decodes a GET of the HTTP API into out, failing the test on error.
func (n *Nomad) Get(t testing.TB, path string, out any) {
	t.Helper()
	if err := n.get(path, out); err != nil {
		t.Fatalf("nomad %v", err)
	}
}

// Env is the environment the nomad CLI needs to talk to this agent.
func (n *Nomad) Env() []string { return []string{"NOMAD_ADDR=" + n.Addr} }

// CLI runs the nomad CLI against the agent and returns its combined output.
func (n *Nomad) CLI(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(Binary(t, "nomad"), args...)
	cmd.Env = append(os.Environ(), n.Env()...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustCLI is CLI, failing the test on error.
func (n *Nomad) MustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.CLI(t, args...)
	if err != nil {
		t.Fatalf("nomad %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Alloc is what the tests read of an allocation.
type Alloc struct {
	ID           string
	Name         string
	JobID        string
	ClientStatus string
	TaskStates   map[string]struct {
		State  string
		Failed bool
		Events []struct {
			Type           string
			DisplayMessage string
			Details        map[string]string
		}
	}
}

// Allocs lists the allocations of a job (children of a periodic job
// included when prefix is set: their IDs start with the parent's).
func (n *Nomad) Allocs(t testing.TB, job string) []Alloc {
	t.Helper()
	var out []Alloc
	n.Get(t, "/v1/allocations?prefix=", &out)
	var mine []Alloc
	for _, a := range out {
		if a.JobID == job || strings.HasPrefix(a.JobID, job+"/") {
			mine = append(mine, a)
		}
	}
	return mine
}

// WaitAllocs waits until job has want allocations whose client status is
// terminal (complete, failed, lost) and returns them.
func (n *Nomad) WaitAllocs(t testing.TB, job string, want int, limit time.Duration) []Alloc {
	t.Helper()
	deadline := time.Now().Add(limit)
	var allocs []Alloc
	for time.Now().Before(deadline) {
		allocs = n.Allocs(t, job)
		done := 0
		for _, a := range allocs {
			switch a.ClientStatus {
			case "complete", "failed", "lost":
				done++
			}
		}
		if done >= want {
			return allocs
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("job %s: %d terminal allocations after %s, want %d: %+v\nagent log:\n%s", job, len(allocs), limit, want, allocs, n.Logs())
	return nil
}

// WaitRunning waits until job has a running allocation and returns it.
func (n *Nomad) WaitRunning(t testing.TB, job string, limit time.Duration) Alloc {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for _, a := range n.Allocs(t, job) {
			if a.ClientStatus == "running" {
				return a
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %s has no running allocation after %s:\n%s", job, limit, n.Logs())
	return Alloc{}
}

// Stop ends the agent and waits for it. Allocations it runs are stopped
// with it: their processes are killed by the agent or by their groups'
// death signals.
func (n *Nomad) Stop() {
	stopAgent(n.cmd, n.stopped, 10*time.Second)
	// Task executors outlive a stopped agent (so that an agent restart
	// keeps tasks running); a test's must not outlive the test. Their
	// command lines name the agent's data dir.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), n.DataDir) {
			var pid int
			if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// Logs returns what the agent printed so far, for failure messages.
func (n *Nomad) Logs() string { return n.logBuf.String() }
