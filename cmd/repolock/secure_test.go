package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// Issue 16, on an agent as production runs it: ACLs with default deny,
// HTTPS only, client certificates verified (verify_incoming), a token of
// the README's policy from a file.
func TestSecureAgent(t *testing.T) {
	pki := testcluster.NewPKI(t)
	srv := testcluster.StartServer(t, testcluster.WithACL(), testcluster.WithTLS(pki))
	mgmt := srv.Client(t)
	tok := testcluster.PolicyToken(t, mgmt, "repolock", testcluster.ReadmePolicy)
	tokenFile := filepath.Join(t.TempDir(), "consul-token")
	must(t, os.WriteFile(tokenFile, []byte(tok.SecretID+"\n"), 0o600))
	env := append(srv.Env(""), "CONSUL_HTTP_TOKEN_FILE="+tokenFile)

	t.Run("the environment's settings, none of them passed to the command", func(t *testing.T) {
		secureEnvScrubbed(t, srv, pki, env, tok.SecretID)
	})
	t.Run("the consul block's settings", func(t *testing.T) { secureConsulBlock(t, srv, pki, mgmt) })
	t.Run("a heal", func(t *testing.T) { secureHeal(t, srv, pki, mgmt) })
	t.Run("permanent failures fail at once", func(t *testing.T) { securePermanent(t, srv, pki, env, mgmt) })
	t.Run("a per-repository token from acl-policy", func(t *testing.T) { securePerRepository(t, srv, mgmt) })
	t.Run("a token file replaced mid-run", func(t *testing.T) { secureTokenRotation(t, srv, mgmt) })
	t.Run("a client certificate replaced mid-run", func(t *testing.T) { secureCertRotation(t, srv, pki, tokenFile) })
}

// Acceptance 4: the policy `acl-policy` prints for one repository locks
// that repository (run, exec, status, break) and nothing else: locking
// another exits 77 naming the key prefix it lacks, and status says what the
// token may not read.
func securePerRepository(t *testing.T, srv *testcluster.Agent, mgmt *api.Client) {
	cfg := writeConfig(t, `
repository "mine" {
  tool     = "exec"
  location = "/srv/backup/mine"
}
repository "theirs" {
  tool     = "exec"
  location = "/srv/backup/theirs"
}
job "j" {
  repository = "mine"
  mode       = "exclusive"
  command    = ["true"]
}
`)
	mgmtEnv := srv.Env(testcluster.ManagementToken)
	code, policy := runRepolock(t, mgmtEnv, "acl-policy", "-config", cfg, "mine")
	if code != 0 || !strings.Contains(policy, `key_prefix "repolock/repos/`) || strings.Count(policy, "key_prefix") != 1 {
		t.Fatalf("acl-policy mine: exit %d, want one key_prefix:\n%s", code, policy)
	}
	t.Logf("acl-policy mine:\n%s", policy)
	env := srv.Env(testcluster.PolicyToken(t, mgmt, "repolock-mine", policy).SecretID)
	// theirs has a last run, recorded with the management token.
	if code, out := runRepolock(t, mgmtEnv, "exec", "-repository", "theirs", "-config", cfg, "-mode", "shared", "--", "true"); code != 0 {
		t.Fatalf("exec theirs with the management token: exit %d:\n%s", code, out)
	}
	for _, args := range [][]string{{"run", "-config", cfg, "j"}, {"exec", "-repository", "mine", "-config", cfg, "-mode", "shared", "--", "true"},
		{"break", "-config", cfg, "mine"}} {
		if code, out := runRepolock(t, env, args...); code != 0 {
			t.Errorf("%s with mine's token: exit %d:\n%s", args[0], code, out)
		}
	}
	code, out := runRepolock(t, env, "exec", "-repository", "theirs", "-config", cfg, "-mode", "shared", "-wait", "1h", "--", "true")
	if code != 77 || !strings.Contains(out, "key_prefix") || !strings.Contains(out, "repolock/repos/") {
		t.Errorf("exec theirs with mine's token: exit %d, want 77 naming the key prefix:\n%s", code, out)
	}
	code, out = runRepolock(t, env, "status", "-config", cfg)
	if code != 0 || !strings.Contains(out, "mine") || strings.Contains(out, "theirs") || !strings.Contains(out, "may not read") {
		t.Errorf("status with mine's token: exit %d, want mine, not theirs, and what it may not read:\n%s", code, out)
	}
	// Issue 23: an operator's read-only policy reads status, writes nothing.
	code, ro := runRepolock(t, mgmtEnv, "acl-policy", "-read-only", "-config", cfg)
	if code != 0 || strings.Contains(ro, `"write"`) || strings.Count(ro, `{ policy = "read" }`) != 3 {
		t.Fatalf("acl-policy -read-only: exit %d, want three read rules (two folders, the sessions) and no write:\n%s", code, ro)
	}
	opEnv := srv.Env(testcluster.PolicyToken(t, mgmt, "operator-read-only", ro).SecretID)
	if code, out := runRepolock(t, opEnv, "status", "-config", cfg); code != 0 || !strings.Contains(out, "theirs") {
		t.Errorf("status with the read-only operator token: exit %d, want both repositories:\n%s", code, out)
	}
	if code, out := runRepolock(t, opEnv, "exec", "-repository", "mine", "-config", cfg, "-mode", "shared", "--", "true"); code != 77 {
		t.Errorf("exec with the read-only operator token: exit %d, want 77:\n%s", code, out)
	}
}

// rotationFlags: a renewal every 500 ms, the kill signal at most 2.2 s after
// the last confirmed one was sent (TTL 4 s).
var rotationFlags = []string{"-ttl", "4s", "-renew-interval", "500ms", "-margin", "800ms", "-kill-timeout", "1s"}

// replace writes data to path as a secrets manager does: a new file
// renamed over the old one.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	must(t, os.WriteFile(tmp, data, 0o600))
	must(t, os.Rename(tmp, path))
}

// Acceptance 3, tokens: the token file is replaced by a new token and the
// old token deleted mid-run: the run ends 0 with no loss. Left stale (its
// token deleted, nothing new), the run fences: 76, naming the ACLs.
func secureTokenRotation(t *testing.T, srv *testcluster.Agent, mgmt *api.Client) {
	for i, rotate := range []bool{true, false} {
		newToken := func() *api.ACLToken {
			return testcluster.PolicyToken(t, mgmt, fmt.Sprintf("rotation-%d-%d", i, time.Now().UnixNano()), testcluster.ReadmePolicy)
		}
		old := newToken()
		file := filepath.Join(t.TempDir(), "token")
		must(t, os.WriteFile(file, []byte(old.SecretID), 0o600))
		beats := filepath.Join(t.TempDir(), "beats")
		key := fmt.Sprintf("secure-token-rotated-%t", rotate)
		p := start(t, append(srv.Env(""), "CONSUL_HTTP_TOKEN_FILE="+file),
			append(append([]string{"exec", "-key", key}, rotationFlags...), "--", "sh", "-c", heartbeatScript(beats, 200))...)
		waitFile(t, beats, 10*time.Second)
		if rotate {
			replace(t, file, []byte(newToken().SecretID+"\n"))
		}
		_, err := mgmt.ACL().TokenDelete(old.AccessorID, nil)
		must(t, err)
		code := p.wait(t, 30*time.Second)
		switch {
		case rotate && (code != 0 || strings.Contains(p.stderr.String(), "lock lost")):
			t.Errorf("token replaced on disk, old one deleted: exit %d, want 0 and no loss:\n%s", code, p.stderr)
		case !rotate && (code != 76 || !strings.Contains(p.stderr.String(), "ACLs")):
			t.Errorf("token file left stale, its token deleted: exit %d, want 76 naming the ACLs:\n%s", code, p.stderr)
		default:
			t.Logf("token rotated %t: exit %d", rotate, code)
		}
	}
}

// Acceptance 3, certificates: repolock reaches the agent through a proxy
// that closes every connection once the first client certificate has
// expired, so each new connection needs a certificate valid then. Replaced
// on disk in time, the run ends 0 with no loss; left to expire, the run
// fences (76) and the log names the certificate.
func secureCertRotation(t *testing.T, srv *testcluster.Agent, pki *testcluster.PKI, tokenFile string) {
	// The two cases at once, each through a proxy of its own: each waits
	// for its first certificate to expire.
	for _, rotate := range []bool{true, false} {
		t.Run(map[bool]string{true: "rotated", false: "left to expire"}[rotate], func(t *testing.T) {
			t.Parallel()
			proxy := testcluster.StartFaultProxy(t, fmt.Sprintf("tls-%t-%d", rotate, time.Now().UnixNano()), "127.0.0.1:0", srv.Addr)
			dir := t.TempDir()
			cert, key := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
			expires := time.Now().Add(5 * time.Second) // repolock's start and grant fit well before it
			shortCert, shortKey := pki.Issue(t, "short-lived", expires, false)
			for _, f := range [][2]string{{shortCert, cert}, {shortKey, key}} {
				b, err := os.ReadFile(f[0])
				must(t, err)
				must(t, os.WriteFile(f[1], b, 0o600))
			}
			env := []string{"CONSUL_HTTP_ADDR=https://" + proxy.Addr, "CONSUL_CACERT=" + pki.CA, "CONSUL_CLIENT_CERT=" + cert,
				"CONSUL_CLIENT_KEY=" + key, "CONSUL_HTTP_TOKEN_FILE=" + tokenFile}
			beats := filepath.Join(t.TempDir(), "beats")
			p := start(t, env, append(append([]string{"exec", "-key", fmt.Sprintf("secure-cert-rotated-%t", rotate)}, rotationFlags...),
				"--", "sh", "-c", heartbeatScript(beats, 560))...)
			waitFile(t, beats, 10*time.Second)
			if rotate {
				// The key first, then the certificate: a handshake between the
				// two renames would pair the new key with the old certificate.
				newCert, newKey := pki.Issue(t, "renewed", time.Now().Add(time.Hour), false)
				for _, f := range [][2]string{{newKey, key}, {newCert, cert}} {
					b, err := os.ReadFile(f[0])
					must(t, err)
					replace(t, f[1], b)
				}
			}
			time.Sleep(time.Until(expires.Add(500 * time.Millisecond)))
			proxy.Reset(t)
			code := p.wait(t, 30*time.Second)
			switch {
			case rotate && (code != 0 || strings.Contains(p.stderr.String(), "lock lost")):
				t.Errorf("certificate replaced on disk before it expired: exit %d, want 0 and no loss:\n%s", code, p.stderr)
			case !rotate && (code != 76 || !strings.Contains(lastLine(p.stderr.String(), "lock lost"), "client certificate")):
				t.Errorf("certificate left to expire: exit %d, want 76 naming the client certificate:\n%s", code, p.stderr)
			default:
				t.Logf("certificate rotated %t: exit %d: %s", rotate, code, lastLine(p.stderr.String(), "lock lost"))
			}
		})
	}
}

// Acceptance 5, with exec and status: every CONSUL_* credential and TLS
// variable set, the lock works, and the command sees none of them, nor
// any of their values.
func secureEnvScrubbed(t *testing.T, srv *testcluster.Agent, pki *testcluster.PKI, env []string, token string) {
	caDir := t.TempDir()
	ca, err := os.ReadFile(pki.CA)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(caDir, "ca.pem"), ca, 0o644))
	all := append(append([]string{}, env...), "CONSUL_TOKEN="+token, "CONSUL_HTTP_TOKEN="+token, "CONSUL_HTTP_AUTH=backup:hunter2-basic-auth",
		"CONSUL_CAPATH="+caDir, "CONSUL_TLS_SERVER_NAME=server.dc1.consul", "CONSUL_HTTP_SSL=true", "CONSUL_HTTP_SSL_VERIFY=true")
	dump := filepath.Join(t.TempDir(), "env")
	code, out := runRepolock(t, all, "exec", "-key", "secure-env", "--", "sh", "-c", "env > "+dump)
	if code != 0 {
		t.Fatalf("exec on the secure agent: exit %d:\n%s", code, out)
	}
	got := waitFile(t, dump, time.Second)
	for _, kv := range all {
		k, v, _ := strings.Cut(kv, "=")
		if k == "CONSUL_HTTP_ADDR" {
			continue // the agent's address is no secret, and is passed on
		}
		if strings.Contains(got, k+"=") || (len(v) > 4 && strings.Contains(got, v)) {
			t.Errorf("the command's environment holds %s or its value", k)
		}
	}
	if code, out := runRepolock(t, all, "status", "secure-env"); code != 0 || !strings.Contains(out, "secure-env") {
		t.Errorf("status on the secure agent: exit %d:\n%s", code, out)
	}
	// A job whose command talks to Consul itself (consul snapshot save)
	// sets its own credentials in its env: those reach it, nothing else.
	jobToken := filepath.Join(t.TempDir(), "snapshot-token")
	cfg := writeConfig(t, fmt.Sprintf(`repository "r" {
  tool     = "exec"
  location = "/srv/secure-snapshots"
}
job "snapshot" {
  repository = "r"
  mode       = "exclusive"
  command    = ["sh", "-c", "env > %s"]
  env        = { CONSUL_HTTP_TOKEN_FILE = %q, CONSUL_CACERT = %q }
}
`, dump, jobToken, pki.CA))
	must(t, os.Remove(dump))
	if code, out := runRepolock(t, all, "run", "-config", cfg, "snapshot"); code != 0 {
		t.Fatalf("run snapshot on the secure agent: exit %d:\n%s", code, out)
	}
	got = waitFile(t, dump, time.Second)
	if !strings.Contains(got, "CONSUL_HTTP_TOKEN_FILE="+jobToken+"\n") || !strings.Contains(got, "CONSUL_CACERT="+pki.CA+"\n") {
		t.Errorf("the job's own CONSUL_* env did not reach its command:\n%s", got)
	}
	for _, kv := range all {
		k, v, _ := strings.Cut(kv, "=")
		set := k == "CONSUL_HTTP_TOKEN_FILE" || k == "CONSUL_CACERT" // the job's own, checked above
		if k != "CONSUL_HTTP_ADDR" && k != "CONSUL_CACERT" && ((!set && strings.Contains(got, k+"=")) || (len(v) > 4 && strings.Contains(got, v))) {
			t.Errorf("the job's command holds the inherited %s or its value", k)
		}
	}
}

// consulBlock is a config's consul block for srv: address with scheme,
// ca_file, cert_file, key_file, token_file, tls_server_name.
func consulBlock(srv *testcluster.Agent, pki *testcluster.PKI, tokenFile string) string {
	return fmt.Sprintf(`consul {
  address   = "https://%s"
  ca_file   = %q
  cert_file = %q
  key_file  = %q
  token_file = %q
  tls_server_name = "server.dc1.consul"
}
`, srv.Addr, pki.CA, pki.ClientCert, pki.ClientKey, tokenFile)
}

// policyTokenFile is a file holding a token of the policy `repolock
// acl-policy -config cfg` prints: what an operator gives repolock.
func policyTokenFile(t *testing.T, srv *testcluster.Agent, mgmt *api.Client, cfg string) string {
	t.Helper()
	code, policy := runRepolock(t, srv.Env(testcluster.ManagementToken), "acl-policy", "-config", cfg)
	if code != 0 {
		t.Fatalf("acl-policy -config %s: exit %d:\n%s", cfg, code, policy)
	}
	file := filepath.Join(t.TempDir(), "consul-token")
	tok := testcluster.PolicyToken(t, mgmt, fmt.Sprintf("acl-policy-%d", time.Now().UnixNano()), policy)
	must(t, os.WriteFile(file, []byte(tok.SecretID+"\n"), 0o600))
	return file
}

// Acceptance 1 through the consul block, and nothing in the environment:
// validate, run, status and break (the heal is secureHeal's), with a
// token of the policy acl-policy prints for the config.
func secureConsulBlock(t *testing.T, srv *testcluster.Agent, pki *testcluster.PKI, mgmt *api.Client) {
	body := `
repository "r" {
  tool     = "exec"
  location = "/srv/secure"
}
job "j" {
  repository = "r"
  mode       = "exclusive"
  command    = ["true"]
}
`
	tokenFile := filepath.Join(t.TempDir(), "token")
	cfg := writeConfig(t, consulBlock(srv, pki, tokenFile)+body)
	tok, err := os.ReadFile(policyTokenFile(t, srv, mgmt, cfg))
	must(t, err)
	replace(t, tokenFile, tok)
	for _, args := range [][]string{{"validate", "-config", cfg}, {"run", "-config", cfg, "j"}, {"status", "-config", cfg, "r"}} {
		if code, out := runRepolock(t, nil, args...); code != 0 {
			t.Errorf("%s with the consul block only: exit %d:\n%s", args[0], code, out)
		}
	}
	// break of a held lock: a holder through the block, broken through it.
	beats := filepath.Join(t.TempDir(), "beats")
	p := start(t, nil, append(append([]string{"exec", "-config", cfg, "-repository", "r", "-mode", "exclusive"}, rotationFlags...), "--", "sh", "-c", heartbeatScript(beats, 600))...)
	waitFile(t, beats, 10*time.Second)
	if code, out := runRepolock(t, nil, "break", "-config", cfg, "r"); code != 0 {
		t.Errorf("break with the consul block only: exit %d:\n%s", code, out)
	}
	if code := p.wait(t, 30*time.Second); code != 76 {
		t.Errorf("the broken holder exited %d, want 76 (lock lost):\n%s", code, p.stderr)
	}
	bad := writeConfig(t, fmt.Sprintf("consul {\n  ca_file = %q\n}\n", filepath.Join(t.TempDir(), "missing.pem")))
	if code, out := runRepolock(t, nil, "validate", "-config", bad); code != 78 || !strings.Contains(out, "ca_file") {
		t.Errorf("validate with a missing ca_file: exit %d, want 78 naming it:\n%s", code, out)
	}
}

// Acceptance 1, a heal: a restic check on host B is SIGKILLed and leaves
// its lock; the next backup (unlock_native = "all") heals it and exits 0,
// on the secure agent with the README policy's token: once through the
// environment, once through the consul block (the two at once), each with
// a token of the policy acl-policy prints for its config.
func secureHeal(t *testing.T, srv *testcluster.Agent, pki *testcluster.PKI, mgmt *api.Client) {
	for _, block := range []bool{false, true} {
		t.Run(map[bool]string{false: "environment", true: "consul block"}[block], func(t *testing.T) {
			t.Parallel()
			repo, pwfile, data := resticRepo(t)
			cfg := healConfig(t, repo, pwfile, data, "all")
			tokenFile := policyTokenFile(t, srv, mgmt, cfg)
			env := append(toolEnv(t, srv, ""), "CONSUL_HTTP_TOKEN_FILE="+tokenFile)
			if block {
				b, err := os.ReadFile(cfg)
				must(t, err)
				cfg = writeConfig(t, consulBlock(srv, pki, tokenFile)+string(b))
				env = []string{"PATH=" + testcluster.PathDir(t, "restic") + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
			}
			lockID := killedOnHostB(t, env, cfg, repo)
			code, out := runRepolock(t, env, "run", "-config", cfg, "backup")
			if code != 0 || !strings.Contains(out, lockID) {
				t.Errorf("backup over host B's stale lock on the secure agent: exit %d, want 0 naming %s:\n%s", code, lockID, out)
			}
		})
	}
}

// Acceptance 2: each failure that waiting cannot heal exits within 2 s with
// -wait 1h, with its code and a message naming the fix, and writes nothing
// to KV.
func securePermanent(t *testing.T, srv *testcluster.Agent, pki *testcluster.PKI, env []string, mgmt *api.Client) {
	expiredCert, expiredKey := pki.Issue(t, "expired-client", time.Now().Add(-time.Minute), false)
	without := func(env []string, drop ...string) []string {
		var out []string
		for _, kv := range env {
			k, _, _ := strings.Cut(kv, "=")
			if !slices.Contains(drop, k) {
				out = append(out, kv)
			}
		}
		return out
	}
	cases := []struct {
		name string
		env  []string
		code int
		fix  string
	}{
		{"wrong CA", append(without(env, "CONSUL_CACERT"), "CONSUL_CACERT="+pki.OtherCA(t)), 69, "CONSUL_CACERT"},
		{"no client certificate", without(env, "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY"), 69, "CONSUL_CLIENT_CERT"},
		{"expired client certificate", append(without(env, "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY"),
			"CONSUL_CLIENT_CERT="+expiredCert, "CONSUL_CLIENT_KEY="+expiredKey), 69, "CONSUL_CLIENT_CERT"},
		{"wrong server name", append(env, "CONSUL_TLS_SERVER_NAME=wrong.example"), 69, "CONSUL_TLS_SERVER_NAME"},
		{"http against the HTTPS port", append(without(env, "CONSUL_HTTP_ADDR"), "CONSUL_HTTP_ADDR=http://"+srv.Addr), 69, "https://"},
		{"a token that does not exist", append(without(env, "CONSUL_HTTP_TOKEN_FILE"), "CONSUL_HTTP_TOKEN=4f0e0000-0000-4000-8000-00000000dead"), 77, "ACL not found"},
	}
	for _, c := range cases {
		key := "secure-" + strings.ReplaceAll(c.name, " ", "-")
		// Each case five times, none retried: in TLS 1.3 the agent refuses
		// a client certificate after the handshake, so the request's write
		// races the agent's alert and often fails first with a broken pipe.
		var code int
		var out string
		var took time.Duration
		for range 5 {
			began := time.Now()
			code, out = runRepolock(t, c.env, "exec", "-key", key, "-wait", "1h", "--", "true")
			took = time.Since(began)
			if code != c.code || !strings.Contains(out, c.fix) || took > 2*time.Second || strings.Contains(out, "unreachable") {
				break
			}
		}
		if code != c.code || !strings.Contains(out, c.fix) || took > 2*time.Second || strings.Contains(out, "unreachable") {
			t.Errorf("%s: exit %d after %s, want %d within 2 s naming %s, never retried:\n%s", c.name, code, took.Round(time.Millisecond), c.code, c.fix, out)
			continue
		}
		keys, _, err := mgmt.KV().Keys(consullock.RepoPrefix("", key), "", nil)
		if err != nil || len(keys) > 0 {
			t.Errorf("%s: left in KV: %q %v", c.name, keys, err)
		}
		t.Logf("%s: exit %d after %s: %s", c.name, code, took.Round(time.Millisecond), lastLine(out, "repolock: "))
	}
}
