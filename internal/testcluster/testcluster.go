// Package testcluster starts real Consul agents on loopback for tests.
//
// Every agent it starts is stopped by t.Cleanup, so a failing test leaves no
// process behind. The Consul binary is the pinned one built into .bin/ by
// `make consul`; a missing binary fails the test with that instruction.
package testcluster

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
)

// ManagementToken is the ACL bootstrap token of agents started WithACL.
const ManagementToken = "4f0e0000-0000-4000-8000-000000000001"

// Agent is one running Consul agent.
type Agent struct {
	Name    string
	Addr    string // host:port of the HTTP API
	SerfLAN string // host:port of serf LAN, for joining
	Token   string // management token when ACLs are enabled
	PKI     *PKI   // the certificates of an agent started WithTLS, else nil
	cmd     *exec.Cmd
	logBuf  *SyncBuffer
	stopped chan struct{}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers, for capturing
// an agent's output or a logger's.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Option changes how an agent is started.
type Option func(*options)

type options struct {
	acl           bool
	maxConns      int
	pki           *PKI
	sessionTTLMin string // "" for the harness's 1s
}

// httpPort is the ports entry of the HTTP API: https only WithTLS.
func (o options) httpPort(port int) string {
	if o.pki != nil {
		return fmt.Sprintf("http = -1, https = %d", port)
	}
	return fmt.Sprintf("http = %d", port)
}

// security is the agent's config for the options: the connection limit,
// ACLs with default deny (the initial management token on servers), and
// TLS with verify_incoming on the HTTPS API and on internal RPC, each agent
// presenting the test's server certificate to the others.
func (o options) security(server bool) string {
	var hcl string
	if o.maxConns > 0 {
		hcl += fmt.Sprintf("limits { http_max_conns_per_client = %d }\n", o.maxConns)
	}
	if o.acl {
		initial := ""
		if server {
			initial = fmt.Sprintf("initial_management = %q, ", ManagementToken)
		}
		hcl += fmt.Sprintf("acl { enabled = true, default_policy = \"deny\", tokens { %sagent = %q } }\n", initial, ManagementToken)
	}
	if o.pki != nil {
		hcl += fmt.Sprintf(`tls {
  defaults { ca_file = %q, cert_file = %q, key_file = %q, verify_incoming = true, verify_outgoing = true }
  internal_rpc { verify_server_hostname = true }
}
`, o.pki.CA, o.pki.ServerCert, o.pki.ServerKey)
	}
	return hcl
}

// apply gives the harness's view of a started agent the options' token
// and certificates.
func (o options) apply(a *Agent) {
	if o.acl {
		a.Token = ManagementToken
	}
	a.PKI = o.pki
}

// WithTLS makes the agent speak HTTPS only, with p's server certificate,
// and verify its clients' certificates (verify_incoming), as a production
// agent does; Env and Client then carry p's CA and client certificate.
func WithTLS(p *PKI) Option { return func(o *options) { o.pki = p } }

// WithMaxConnsPerClient raises the agent's limit of HTTP connections per
// client IP (limits.http_max_conns_per_client, 200 by default), for tests
// that run hundreds of contenders from one address.
func WithMaxConnsPerClient(n int) Option { return func(o *options) { o.maxConns = n } }

// WithSessionTTLMin sets the server's session_ttl_min (the harness's is
// 1s; Consul's default is 10s).
func WithSessionTTLMin(d string) Option { return func(o *options) { o.sessionTTLMin = d } }

// WithACL enables ACLs with default deny and ManagementToken as the
// initial management token.
func WithACL() Option { return func(o *options) { o.acl = true } }

// RepoRoot finds the repository root (the directory holding go.mod with our
// module) from the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/repolock/repolock\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testcluster: repository root (go.mod of github.com/repolock/repolock) not found above the working directory")
		}
		dir = parent
	}
}

// Binary returns the path of tool name: the operator's own build when
// $NAME_BIN is set (CONSUL_BIN, NOMAD_BIN, CONSUL_TEMPLATE_BIN,
// RESTIC_BIN, …), else the pinned one in .bin/. A missing binary fails the
// test with what builds it.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if v := os.Getenv(BinVar(name)); v != "" {
		p, err := ownBinary(RepoRoot(t), v)
		if err != nil {
			t.Fatalf("%s=%s: %v", BinVar(name), v, err)
		}
		return p
	}
	p := filepath.Join(RepoRoot(t), ".bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found at %s: build it with `make %s` (or `make tools`), or name your own with %s", name, p, name, BinVar(name))
	}
	return p
}

// BinVar is the variable that names an operator's own build of tool name:
// consul-template → CONSUL_TEMPLATE_BIN.
func BinVar(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_BIN"
}

// ownBinary resolves an operator's binary: a bare name through PATH, a
// relative path against the repository root (where make runs).
func ownBinary(root, v string) (string, error) {
	if !strings.Contains(v, "/") {
		return exec.LookPath(v)
	}
	if !filepath.IsAbs(v) {
		v = filepath.Join(root, v)
	}
	fi, err := os.Stat(v)
	if err != nil {
		return "", err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", v)
	}
	return v, nil
}

// PathDir returns a directory that holds each named tool, as Binary finds
// it, under its plain name: put first in PATH, it makes a command that
// calls `restic` run the build under test.
func PathDir(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.Symlink(Binary(t, n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// FreePort returns a TCP port that was free on host a moment ago.
func FreePort(t testing.TB, host string) int {
	t.Helper()
	return FreePorts(t, host, 1)[0]
}

// FreePorts returns n distinct ports that were free on host, for TCP and
// UDP alike, a moment ago (serf listens on both). They come from below the
// kernel's ephemeral range, so no outgoing connection of another agent or
// client can take one between this check and the agent's bind, and the
// listeners are held until all n are found, so no port is handed out twice.
func FreePorts(t testing.TB, host string, n int) []int {
	t.Helper()
	lo, hi := portRange()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("testcluster: no free port on %s in [%d, %d)", host, lo, hi)
		}
		port := lo + rand.IntN(hi-lo)
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		defer l.Close()
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		defer u.Close()
		ports = append(ports, port)
	}
	return ports
}

// portRange is where FreePorts looks: from 10000 up to the start of the
// kernel's ephemeral range (net.ipv4.ip_local_port_range), or 20000-30000
// when that cannot be read or leaves too little room.
func portRange() (lo, hi int) {
	lo, hi = 10000, 20000
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 20000, 30000
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		if eph, err := strconv.Atoi(f[0]); err == nil && eph > lo+2000 {
			hi = eph
		}
	}
	return lo, hi
}

// StartServer starts a single dev-mode server agent on 127.0.0.1 with
// session_ttl_min = 1s and waits until it has a leader.
func StartServer(t testing.TB, opts ...Option) *Agent {
	t.Helper()
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	return startRetrying(t, func() *Agent {
		host := "127.0.0.1"
		p := FreePorts(t, host, 3)
		http, serf, server := p[0], p[1], p[2]
		hcl := fmt.Sprintf(`
ports { %s, serf_lan = %d, serf_wan = -1, server = %d, dns = -1, grpc = -1, grpc_tls = -1 }
session_ttl_min = %q
log_level = "warn"
`, o.httpPort(http), serf, server, cmp.Or(o.sessionTTLMin, "1s")) + o.security(true)
		a := start(t, "server", host, serf, http, "-dev", "-hcl", hcl)
		o.apply(a)
		return a
	})
}

// startRetrying runs launch and waits until its agent is ready. An agent
// that exits first (a port taken between FreePorts and its bind) is
// launched again on new ports, up to three tries in all.
func startRetrying(t testing.TB, launch func() *Agent) *Agent {
	t.Helper()
	var a *Agent
	tries(t, "start", func() ([]*Agent, error) {
		a = launch()
		return []*Agent{a}, waitAgents(30*time.Second, a)
	})
	return a
}

// tries runs try, which starts agents and waits for them, up to three
// times: an agent that exited during the start (errExited) stops them all
// and tries again on new ports; any other error fails the test.
func tries(t testing.TB, what string, try func() ([]*Agent, error)) {
	t.Helper()
	const n = 3
	for i := 1; ; i++ {
		agents, err := try()
		if err == nil {
			err = seedEpoch(agents)
		}
		if err == nil {
			return
		}
		for _, a := range agents {
			a.Stop()
		}
		if !errors.Is(err, errExited) || i == n {
			t.Fatalf("testcluster: %s, try %d of %d: %v", what, i, n, err)
		}
		t.Logf("testcluster: %s, try %d of %d, again on new ports: %v", what, i, n, err)
	}
}

// StartClient starts a client agent on 127.0.0.2 joined to server, for
// partition tests: freezing it with Freeze cuts its callers off the cluster.
func StartClient(t testing.TB, server *Agent) *Agent {
	t.Helper()
	return startRetrying(t, func() *Agent {
		host := "127.0.0.2"
		p := FreePorts(t, host, 2)
		http, serf := p[0], p[1]
		hcl := fmt.Sprintf(`
ports { http = %d, serf_lan = %d, serf_wan = -1, dns = -1, grpc = -1, grpc_tls = -1 }
log_level = "warn"
`, http, serf)
		return start(t, "client", host, serf, http,
			"-data-dir", t.TempDir(), "-retry-join", server.SerfLAN, "-retry-interval", "200ms", "-hcl", hcl)
	})
}

// start starts one agent: role, host and the two ports name it in logs and
// joins (six parameters, the last the agent's own flags).
func start(t testing.TB, role, host string, serf, httpPort int, args ...string) *Agent {
	t.Helper()
	bin := Binary(t, "consul")
	name := fmt.Sprintf("%s-%d", role, httpPort)
	full := append([]string{"agent", "-node", name, "-bind", host, "-client", host}, args...)
	a := &Agent{
		Name:    name,
		Addr:    net.JoinHostPort(host, fmt.Sprint(httpPort)),
		SerfLAN: net.JoinHostPort(host, fmt.Sprint(serf)),
		cmd:     exec.Command(bin, full...),
		logBuf:  &SyncBuffer{},
		stopped: make(chan struct{}),
	}
	a.cmd.Stdout = a.logBuf
	a.cmd.Stderr = a.logBuf
	// Its own process group so that a SIGINT to the test does not reach it
	// before Stop, and so Pdeathsig ends it if the test binary dies.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("testcluster: start consul %s: %v", role, err)
	}
	go func() {
		_ = a.cmd.Wait()
		close(a.stopped)
	}()
	t.Cleanup(a.Stop)
	return a
}

func (a *Agent) waitReady(t testing.TB, limit time.Duration) {
	t.Helper()
	if err := waitAgents(limit, a); err != nil {
		t.Fatal(err)
	}
}

// seedEpoch writes the epoch key of the default prefix in each agent's
// datacenter, as a store that has granted before holds it: without it the
// first grant of every test would wait a ttl (consullock's checkEpoch).
// The tests of that wait delete it, and an agent restarted in dev mode
// comes back without it, as a wiped store does.
func seedEpoch(agents []*Agent) error {
	for _, a := range agents {
		if _, _, err := a.plainClient().KV().CAS(&api.KVPair{Key: consullock.EpochKey(""), Value: []byte(`{"seeded":"testcluster"}`)}, nil); err != nil {
			return fmt.Errorf("testcluster: seed the epoch key through %s: %w", a.Name, err)
		}
	}
	return nil
}

// errExited is an agent that ended before it was ready: in a start, most
// likely a port taken between FreePorts and its bind, so a new try helps.
var errExited = errors.New("exited before it was ready")

// waitAgents waits until every agent sees a leader and serves sessions. It
// returns at once, wrapping errExited, when any of them exits; after limit
// it names every agent not ready yet, with its log.
func waitAgents(limit time.Duration, agents ...*Agent) error {
	deadline := time.Now().Add(limit)
	pending := append([]*Agent(nil), agents...)
	clients := map[*Agent]*api.Client{}
	for _, a := range agents {
		clients[a] = a.plainClient()
	}
	for len(pending) > 0 {
		var still []*Agent
		for _, a := range pending {
			if a.stoppedNow() {
				return fmt.Errorf("testcluster: consul %s %w:\n%s", a.Name, errExited, a.logBuf.String())
			}
			if !a.readyNow(clients[a]) {
				still = append(still, a)
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var msg strings.Builder
			for _, a := range pending {
				fmt.Fprintf(&msg, "testcluster: consul %s not ready after %s:\n%s\n", a.Name, limit, a.logBuf.String())
			}
			return errors.New(msg.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// readyNow says whether the agent sees a leader, serves the session
// endpoint and has its own node registered (a leader alone is not enough
// right after an election).
func (a *Agent) readyNow(c *api.Client) bool {
	if leader, err := c.Status().Leader(); err != nil || leader == "" {
		return false
	}
	if _, _, err := c.Session().List(nil); err != nil {
		return false
	}
	n, _, err := c.Catalog().Node(a.Name, nil)
	return err == nil && n != nil
}

// Client returns an API client for the agent (with the management token
// when ACLs are on).
func (a *Agent) Client(t testing.TB) *api.Client {
	t.Helper()
	return a.plainClient()
}

// plainClient is Client for the harness itself; api.NewClient fails only
// on a bad TLS config, which these agents do not have.
func (a *Agent) plainClient() *api.Client {
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = a.Addr
	cfg.Token = a.Token
	if a.PKI != nil {
		cfg.Scheme = "https"
		cfg.TLSConfig = api.TLSConfig{CAFile: a.PKI.CA, CertFile: a.PKI.ClientCert, KeyFile: a.PKI.ClientKey}
	}
	c, _ := api.NewClient(cfg)
	return c
}

// Env returns the CONSUL_HTTP_* environment a repolock process needs to talk
// to this agent, with token as its ACL token ("" for none).
func (a *Agent) Env(token string) []string {
	env := []string{"CONSUL_HTTP_ADDR=" + a.Addr}
	if a.PKI != nil {
		env = []string{"CONSUL_HTTP_ADDR=https://" + a.Addr, "CONSUL_CACERT=" + a.PKI.CA,
			"CONSUL_CLIENT_CERT=" + a.PKI.ClientCert, "CONSUL_CLIENT_KEY=" + a.PKI.ClientKey}
	}
	if token != "" {
		env = append(env, "CONSUL_HTTP_TOKEN="+token)
	}
	return env
}

// Freeze stops the agent with SIGSTOP: its TCP port still accepts
// connections but nothing answers, as in a partition or a hung agent.
func (a *Agent) Freeze(t testing.TB) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("freeze %s: %v", a.Name, err)
	}
}

// Thaw resumes a frozen agent.
func (a *Agent) Thaw(t testing.TB) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("thaw %s: %v", a.Name, err)
	}
}

// Stop ends the agent (a frozen one too) and waits for it.
func (a *Agent) Stop() {
	_ = a.cmd.Process.Signal(syscall.SIGCONT)
	stopAgent(a.cmd, a.stopped, 5*time.Second)
}

// stopAgent asks an agent (Consul or Nomad) to leave with SIGINT and waits
// until stopped closes, SIGKILLing its process group after grace. An agent
// already stopped is left alone.
func stopAgent(cmd *exec.Cmd, stopped <-chan struct{}, grace time.Duration) {
	select {
	case <-stopped:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-stopped:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-stopped
	}
}

// Logs returns what the agent printed so far, for failure messages.
func (a *Agent) Logs() string { return a.logBuf.String() }

// Cluster is several Consul servers and client agents, each on its own
// loopback address, for fault tests: kill, restart (same data dir), freeze
// and thaw any agent, and find the leader.
type Cluster struct {
	Servers []*Agent
	Clients []*Agent
}

// StartCluster starts servers (on 127.0.0.1, .2, …) with session_ttl_min
// 1s and fast Raft timing, and clients on the next addresses, all joined,
// and waits until every agent sees a leader. An agent that exits during the
// start (a port another process took first) fails only that try: the whole
// cluster is stopped and started again on new ports, up to three times.
func StartCluster(t testing.TB, servers, clients int, opts ...Option) *Cluster {
	t.Helper()
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	var c *Cluster
	tries(t, "cluster start", func() ([]*Agent, error) {
		c = launchCluster(t, servers, clients, o)
		return c.agents(), waitAgents(60*time.Second, c.agents()...)
	})
	return c
}

// launchCluster starts the agents of one StartCluster try without waiting.
func launchCluster(t testing.TB, servers, clients int, o options) *Cluster {
	t.Helper()
	c := &Cluster{}
	var joins []string
	type plan struct {
		host            string
		http, serf, rpc int
		server          bool
	}
	var plans []plan
	for i := 0; i < servers+clients; i++ {
		host := fmt.Sprintf("127.0.0.%d", i+1)
		p := FreePorts(t, host, 3)
		plans = append(plans, plan{host, p[0], p[1], p[2], i < servers})
		if i < servers {
			joins = append(joins, net.JoinHostPort(host, fmt.Sprint(p[1])))
		}
	}
	for i, p := range plans {
		hcl := fmt.Sprintf(`
ports { %s, serf_lan = %d, serf_wan = -1, server = %d, dns = -1, grpc = -1, grpc_tls = -1 }
log_level = "warn"
performance { raft_multiplier = 1 }
`, o.httpPort(p.http), p.serf, p.rpc) + o.security(p.server)
		args := []string{"-data-dir", t.TempDir(), "-hcl", hcl, "-retry-interval", "200ms"}
		for _, j := range joins {
			args = append(args, "-retry-join", j)
		}
		role := "client"
		if p.server {
			role = fmt.Sprintf("server%d", i+1)
			args = append(args, "-server", "-bootstrap-expect", fmt.Sprint(servers), "-hcl", `session_ttl_min = "1s"`)
		}
		a := start(t, role, p.host, p.serf, p.http, args...)
		o.apply(a)
		if p.server {
			c.Servers = append(c.Servers, a)
		} else {
			c.Clients = append(c.Clients, a)
		}
	}
	return c
}

func (c *Cluster) agents() []*Agent {
	return append(append([]*Agent(nil), c.Servers...), c.Clients...)
}

// Leader returns the server that leads now, waiting up to limit for one.
func (c *Cluster) Leader(t testing.TB, limit time.Duration) *Agent {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if s.stoppedNow() {
				continue
			}
			leader, err := s.plainClient().Status().Leader()
			if err != nil || leader == "" {
				continue
			}
			host, _, _ := net.SplitHostPort(leader)
			for _, cand := range c.Servers {
				if h, _, _ := net.SplitHostPort(cand.Addr); h == host && !cand.stoppedNow() {
					return cand
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testcluster: no leader within %s", limit)
	return nil
}

func (a *Agent) stoppedNow() bool {
	select {
	case <-a.stopped:
		return true
	default:
		return false
	}
}

// Kill SIGKILLs the agent, as a crash would.
func (a *Agent) Kill(t testing.TB) {
	t.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGCONT)
	_ = a.cmd.Process.Kill()
	<-a.stopped
}

// Restart starts a stopped or killed agent again with the same arguments
// and data dir, and waits until it is ready.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.relaunch(t)
	a.waitReady(t, 60*time.Second)
}

// relaunch starts a stopped agent again without waiting: a server alone
// has no leader until a quorum of its peers is back.
func (a *Agent) relaunch(t testing.TB) {
	t.Helper()
	if !a.stoppedNow() {
		t.Fatalf("testcluster: restart of %s, which still runs", a.Name)
	}
	cmd := exec.Command(a.cmd.Path, a.cmd.Args[1:]...)
	cmd.Stdout, cmd.Stderr = a.logBuf, a.logBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testcluster: restart %s: %v", a.Name, err)
	}
	a.cmd, a.stopped = cmd, make(chan struct{})
	stopped := a.stopped
	go func() {
		_ = cmd.Wait()
		close(stopped)
	}()
}

// RestartServers SIGKILLs every server, as a site-wide crash would, starts
// them all again from their data dirs, and waits until every agent of the
// cluster sees a leader again.
func (c *Cluster) RestartServers(t testing.TB) {
	t.Helper()
	for _, s := range c.Servers {
		s.Kill(t)
	}
	for _, s := range c.Servers {
		s.relaunch(t)
	}
	c.WaitReady(t)
}

// WaitReady waits until every agent of the cluster sees a leader and serves
// sessions again, after a fault test has thawed or restarted some of them.
func (c *Cluster) WaitReady(t testing.TB) {
	t.Helper()
	if err := waitAgents(60*time.Second, c.agents()...); err != nil {
		t.Fatal(err)
	}
}

// ReadmePolicy is the ACL policy the README documents for every repository.
const ReadmePolicy = `node "repolock" { policy = "write" }
session "repolock" { policy = "write" }
key_prefix "repolock/repos/" { policy = "write" }
key "repolock/epoch" { policy = "write" }`

// PolicyToken creates a policy of rules (named name) with mgmt, a
// management client, and a token of it.
func PolicyToken(t testing.TB, mgmt *api.Client, name, rules string) *api.ACLToken {
	t.Helper()
	pol, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil)
	if err != nil {
		t.Fatalf("testcluster: policy %s: %v", name, err)
	}
	tok, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatalf("testcluster: token of policy %s: %v", name, err)
	}
	return tok
}

// GarbageEntries writes n entries under key's lock folder that are not a
// contender's (issue 23), each kind in turn: named other than their
// session, named for a session that is another key's contender, and left
// with no session (released). None may change a grant, or its cost.
func GarbageEntries(t testing.TB, c *api.Client, key string, n int) {
	t.Helper()
	if n == 0 {
		return
	}
	session := func(name string) string {
		id, _, err := c.Session().CreateNoChecks(&api.SessionEntry{Name: name, TTL: "600s"}, nil)
		if err != nil {
			t.Fatalf("testcluster: garbage session: %v", err)
		}
		t.Cleanup(func() { _, _ = c.Session().Destroy(id, nil) })
		return id
	}
	sid := session("not a contender")
	folder := consullock.RepoPrefix("", key) + "lock/"
	for i := range n {
		pair := &api.KVPair{Value: []byte(`{"mode":"exclusive","state":"holding"}`), Session: sid}
		switch i % 3 {
		case 0:
			pair.Key = folder + fmt.Sprintf("garbage-%d", i)
		case 1:
			other := session("repolock exclusive another-key")
			pair.Key, pair.Session = folder+other, other
		case 2:
			pair.Key, pair.Session = folder+fmt.Sprintf("0f663746-c183-4ffc-c901-%012d", i), ""
		}
		var err error
		if pair.Session != "" {
			_, _, err = c.KV().Acquire(pair, nil)
		} else {
			_, err = c.KV().Put(pair, nil)
		}
		if err != nil {
			t.Fatalf("testcluster: garbage entry %s: %v", pair.Key, err)
		}
	}
}
