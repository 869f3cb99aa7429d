package testcluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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
	Token   string // the ACL bootstrap (management) token, NomadWithACL
	cmd     *exec.Cmd
	logBuf  *SyncBuffer
	stopped chan struct{}
}

// NomadOption changes how a Nomad agent is started.
type NomadOption func(*nomadOptions)

type nomadOptions struct {
	acl         bool
	hostVolumes map[string]string
	chroot      map[string]string
}

// NomadWithACL enables Nomad's ACLs and bootstraps them: Token is the
// management token, which Env, Get and the CLI then carry.
func NomadWithACL() NomadOption { return func(o *nomadOptions) { o.acl = true } }

// NomadHostVolume declares a client host volume (read-write) of the
// directory path, for the exec driver's tasks to mount.
func NomadHostVolume(name, path string) NomadOption {
	return func(o *nomadOptions) {
		if o.hostVolumes == nil {
			o.hostVolumes = map[string]string{}
		}
		o.hostVolumes[name] = path
	}
}

// NomadChroot sets the client's chroot_env, what the exec driver copies
// into each task's chroot (host path to path inside).
func NomadChroot(m map[string]string) NomadOption { return func(o *nomadOptions) { o.chroot = m } }

// NomadConsulRules is the policy of the Consul token a Nomad agent holds
// against a Consul with ACLs: it registers its own services and reads the
// agent and the catalog; the locks are repolock's, with their own tokens.
const NomadConsulRules = `agent_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
service_prefix "" { policy = "write" }`

// StartNomad starts a Nomad dev agent on 127.0.0.1 that uses consul for
// its templates, with the cloud fingerprinters denied (they would wait for
// metadata services that are not there), and waits until its client node is
// ready. Against a Consul with ACLs the agent holds a token of its own
// (NomadConsulRules); against one WithTLS it speaks HTTPS with the test's
// client certificate.
func StartNomad(t testing.TB, consul *Agent, opts ...NomadOption) *Nomad {
	t.Helper()
	var o nomadOptions
	for _, opt := range opts {
		opt(&o)
	}
	bin := Binary(t, "nomad")
	p := FreePorts(t, "127.0.0.1", 3)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.hcl")
	consulHCL := fmt.Sprintf("address = %q\n", consul.Addr)
	if consul.Token != "" {
		tok := PolicyToken(t, consul.plainClient(), "nomad-agent-"+filepath.Base(dir), NomadConsulRules)
		consulHCL += fmt.Sprintf("token = %q\n", tok.SecretID)
	}
	if consul.PKI != nil {
		consulHCL += fmt.Sprintf("ssl = true\nca_file = %q\ncert_file = %q\nkey_file = %q\n", consul.PKI.CA, consul.PKI.ClientCert, consul.PKI.ClientKey)
	}
	var client string
	for name, path := range o.hostVolumes {
		client += fmt.Sprintf("  host_volume %q { path = %q }\n", name, path)
	}
	if len(o.chroot) > 0 {
		client += "  chroot_env {\n"
		for from, to := range o.chroot {
			client += fmt.Sprintf("    %q = %q\n", from, to)
		}
		client += "  }\n"
	}
	acl := ""
	if o.acl {
		acl = "acl { enabled = true }\n"
	}
	hcl := fmt.Sprintf(`
bind_addr = "127.0.0.1"
data_dir  = %q
ports { http = %d, rpc = %d, serf = %d }
consul {
%s}
client {
  options { "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean" }
%s}
plugin "raw_exec" { config { enabled = true } }
%slog_level = "WARN"
`, filepath.Join(dir, "data"), p[0], p[1], p[2], consulHCL, client, acl)
	if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
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
	if o.acl {
		n.bootstrap(t, 60*time.Second)
	}
	n.waitReady(t, 60*time.Second)
	return n
}

// bootstrap makes the ACL bootstrap token once the agent has a leader.
func (n *Nomad) bootstrap(t testing.TB, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-n.stopped:
			t.Fatalf("testcluster: nomad exited early:\n%s", n.logBuf.String())
		default:
		}
		var tok struct{ SecretID string }
		if last = n.do(http.MethodPost, "/v1/acl/bootstrap", nil, &tok); last == nil && tok.SecretID != "" {
			n.Token = tok.SecretID
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("testcluster: nomad ACL bootstrap after %s: %v\n%s", limit, last, n.logBuf.String())
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
func (n *Nomad) get(path string, out any) error { return n.do(http.MethodGet, path, nil, out) }

// do sends a request to the HTTP API with the agent's token, the body as
// JSON, and decodes the answer into out (when not nil).
func (n *Nomad) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.Addr+path, rd)
	if err != nil {
		return err
	}
	if n.Token != "" {
		req.Header.Set("X-Nomad-Token", n.Token)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(msg))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// PutVar writes a Nomad Variable through the HTTP API (not the CLI, whose
// argv would carry its secrets).
func (n *Nomad) PutVar(t testing.TB, path string, items map[string]string) {
	t.Helper()
	if err := n.do(http.MethodPut, "/v1/var/"+path, map[string]any{"Path": path, "Items": items}, nil); err != nil {
		t.Fatalf("nomad: put variable %s: %v", path, err)
	}
}

// Get decodes a GET of the HTTP API into out, failing the test on error.
func (n *Nomad) Get(t testing.TB, path string, out any) {
	t.Helper()
	if err := n.get(path, out); err != nil {
		t.Fatalf("nomad %v", err)
	}
}

// Env is the environment the nomad CLI needs to talk to this agent.
func (n *Nomad) Env() []string {
	env := []string{"NOMAD_ADDR=" + n.Addr}
	if n.Token != "" {
		env = append(env, "NOMAD_TOKEN="+n.Token)
	}
	return env
}

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
