package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/run"
	"github.com/repolock/repolock/internal/testcluster"
)

// Issue 22: the CLI against two WAN-federated datacenters, the locks in
// dc1. One federated pair serves every case.
func TestTwoDatacenters(t *testing.T) {
	f := testcluster.StartFederation(t)
	dc1, dc2, dc2srv := f.DC1.Servers[0], f.DC2.Clients[0], f.DC2.Servers[0]
	t.Run("exec from dc2 takes the lock in dc1", func(t *testing.T) { fedExec(t, dc1, dc2, dc2srv) })
	t.Run("operator commands from either datacenter", func(t *testing.T) { fedOperator(t, dc1, dc2, dc2srv) })
	t.Run("misnamed datacenter fails at once", func(t *testing.T) { fedMisnamed(t, dc2) })
	t.Run("a client agent without a server for sessions fails at once", func(t *testing.T) { fedClientAgent(t, dc2) })
	t.Run("missing node registration fails at once", func(t *testing.T) { fedMissingNode(t, dc2srv) })
}

// dcConfig is a consul block naming dc1, the datacenter of the locks, and,
// when server is not nil, the server agent that creates the sessions.
func dcConfig(server *testcluster.Agent) string {
	if server == nil {
		return "consul {\n  datacenter = \"dc1\"\n}\n"
	}
	return fmt.Sprintf("consul {\n  datacenter = \"dc1\"\n  session_address = %q\n}\n", server.Addr)
}

// Acceptance 1: with the agent in dc2, exec takes the lock in dc1 (its
// entry is in dc1's KV, not dc2's); a dc1 contender sees it busy (75,
// naming the holder), and status from dc2 shows the holder and dc1.
func fedExec(t *testing.T, dc1, dc2, dc2srv *testcluster.Agent) {
	mark := filepath.Join(t.TempDir(), "started")
	holder := start(t, dc2.Env(""), "exec", "-datacenter", "dc1", "-session-address", dc2srv.Addr, "-key", "fed-exec", "--",
		"sh", "-c", fmt.Sprintf("echo $REPOLOCK_FENCING_TOKEN > %q; sleep 60", mark))
	token := strings.TrimSpace(waitFile(t, mark, 30*time.Second))

	inDC1, _, err := dc1.Client(t).KV().List(consullock.RepoPrefix("", "fed-exec")+"lock/", nil)
	must(t, err)
	inDC2, _, err := dc2.Client(t).KV().List(consullock.RepoPrefix("", "fed-exec")+"lock/", nil)
	must(t, err)
	if len(inDC1) != 1 || len(inDC2) != 0 {
		t.Fatalf("lock entries: %d in dc1, %d in dc2; want 1 and 0", len(inDC1), len(inDC2))
	}

	code, out := runRepolock(t, dc1.Env(""), "exec", "-key", "fed-exec", "-wait", "0", "--", "true")
	if pid := strconv.Itoa(holder.cmd.Process.Pid); code != 75 || !strings.Contains(out, pid) {
		t.Errorf("dc1 contender: exit %d, want 75 naming the dc2 holder (pid %s):\n%s", code, pid, out)
	}

	cfg := writeConfig(t, dcConfig(nil))
	code, out = runRepolock(t, dc2.Env(""), "status", "-config", cfg, "fed-exec")
	if code != 0 || !strings.Contains(out, `locks in datacenter "dc1"`) || !strings.Contains(out, "holding") || !strings.Contains(out, token) {
		t.Errorf("status from dc2: exit %d, want the holder with token %s in dc1:\n%s", code, token, out)
	}
	t.Logf("status from dc2:\n%s", out)

	must(t, holder.cmd.Process.Signal(os.Interrupt))
	if code := holder.wait(t, 30*time.Second); code != 130 {
		t.Errorf("holder stopped with SIGINT: exit %d, want 130:\n%s", code, holder.stderr)
	}
}

// Test 5: status, status -json, break, heal and the last-run record act on
// dc1's data from either datacenter. A restic "check" on host B is killed
// and leaves its lock; a backup run from dc2 heals it; the last record is
// in dc1 and both datacenters' status show it; a holder in dc1 is broken
// from dc2.
func fedOperator(t *testing.T, dc1, dc2, dc2srv *testcluster.Agent) {
	repo, pwfile, data := resticRepo(t)
	heal, err := os.ReadFile(healConfig(t, repo, pwfile, data, "all"))
	must(t, err)
	body := string(heal)
	// Each datacenter's hosts have their config: dc2's names its server.
	cfg1, cfg2 := writeConfig(t, dcConfig(nil)+body), writeConfig(t, dcConfig(dc2srv)+body)
	env1, env2 := toolEnv(t, dc1, ""), toolEnv(t, dc2, "")
	key := repoKey(t, env2, cfg2)
	if k := repoKey(t, env1, cfg1); k != key {
		t.Fatalf("the two datacenters' configs lock %q and %q", k, key)
	}

	lockID := killedOnHostB(t, env1, cfg1, repo)
	code, out := runRepolock(t, env2, "run", "-config", cfg2, "backup")
	if code != 0 || !strings.Contains(out, "removed native lock") || !strings.Contains(out, lockID) {
		t.Fatalf("backup from dc2 over host B's stale lock: exit %d, want 0 and the lock %s named:\n%s", code, lockID, out)
	}
	last := lastRun(t, dc1.Client(t), key)
	if last.Exit != 0 || len(last.NativeLocksCleared) != 1 || last.NativeLocksCleared[0].ID != lockID {
		t.Fatalf("dc1's last record %+v, want exit 0 and the healed lock", last)
	}

	// status -json from both datacenters: the same last run, in dc1.
	for i, env := range [][]string{env1, env2} {
		code, out := runRepolock(t, env, "status", "-json", "-config", []string{cfg1, cfg2}[i], "r")
		var doc struct {
			Datacenter string `json:"datacenter"`
			Locks      []struct {
				Key  string `json:"key"`
				Last *struct {
					Token uint64 `json:"fencing_token"`
					Exit  int    `json:"exit"`
				} `json:"last"`
			} `json:"locks"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.Datacenter != "dc1" || len(doc.Locks) != 1 ||
			doc.Locks[0].Last == nil || doc.Locks[0].Last.Token != last.Token {
			t.Errorf("status -json from %s: exit %d, want dc1 and the last run with token %d:\n%s", env[0], code, last.Token, out)
		}
	}

	// A holder in dc1, broken from dc2.
	mark := filepath.Join(t.TempDir(), "started")
	holder := start(t, env1, "exec", "-repository", "r", "-config", cfg1, "-mode", "exclusive", "--", "sh", "-c", fmt.Sprintf("echo 1 > %q; sleep 60", mark))
	for deadline := time.Now().Add(30 * time.Second); !fileExists(mark); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the dc1 holder's command did not start within 30 s:\n%s", holder.stderr)
		}
	}
	code, out = runRepolock(t, env2, "break", "-config", cfg2, "r")
	if code != 0 || !strings.Contains(out, strconv.Itoa(holder.cmd.Process.Pid)) {
		t.Errorf("break from dc2: exit %d, want 0 naming the dc1 holder:\n%s", code, out)
	}
	if code := holder.wait(t, 30*time.Second); code != 76 {
		t.Errorf("broken dc1 holder: exit %d, want 76:\n%s", code, holder.stderr)
	}
	code, out = runRepolock(t, env2, "status", "-config", cfg2, "r")
	if code != 0 || !strings.Contains(out, "free") || !strings.Contains(out, "lock lost") {
		t.Errorf("status from dc2 after the break: exit %d, want r free and its last run lost:\n%s", code, out)
	}
}

// Acceptance 3: a datacenter the agent does not know exits 78 at once,
// naming the setting, even with an hour's wait; from the flag and from
// the config alike.
func fedMisnamed(t *testing.T, dc2 *testcluster.Agent) {
	cfg := writeConfig(t, "consul {\n  datacenter = \"dc9\"\n}\nrepository \"r\" {\n  tool = \"exec\"\n  location = \"/srv/x\"\n}\n"+
		"job \"j\" {\n  repository = \"r\"\n  mode = \"exclusive\"\n  command = [\"true\"]\n}\n")
	for _, args := range [][]string{
		{"exec", "-datacenter", "dc9", "-key", "fed-typo", "-wait", "1h", "--", "true"},
		{"run", "-config", cfg, "j"}, // the default wait is an hour
		{"status", "-config", cfg},
	} {
		began := time.Now()
		code, out := runRepolock(t, dc2.Env(""), args...)
		took := time.Since(began)
		if code != 78 || !strings.Contains(out, `"dc9"`) || !strings.Contains(out, "dc1") || !strings.Contains(out, "dc2") || took > 2*time.Second {
			t.Errorf("%s with datacenter dc9: exit %d after %s, want 78 within 2 s naming dc9 and the known ones:\n%s", args[0], code, took.Round(time.Millisecond), out)
		}
	}
}

// A client agent refuses to create a session in another datacenter
// (consul#6828): without consul.session_address that is final within
// 2 s, exit 69, with a message naming the setting.
func fedClientAgent(t *testing.T, dc2 *testcluster.Agent) {
	began := time.Now()
	code, out := runRepolock(t, dc2.Env(""), "exec", "-datacenter", "dc1", "-key", "fed-client", "-wait", "1h", "--", "true")
	took := time.Since(began)
	if code != 69 || !strings.Contains(out, "session_address") || !strings.Contains(out, "server agent") || took > 2*time.Second {
		t.Errorf("exec from dc2's client agent without a session address: exit %d after %s, want 69 within 2 s naming session_address:\n%s",
			code, took.Round(time.Millisecond), out)
	}
	// A session address serves the locks of another datacenter only.
	if code, out := runRepolock(t, dc2.Env(""), "exec", "-session-address", "127.0.0.1:1", "-key", "fed-client", "--", "true"); code != 64 || !strings.Contains(out, "-datacenter") {
		t.Errorf("exec -session-address without -datacenter: exit %d, want 64 naming -datacenter:\n%s", code, out)
	}
}

// Acceptance 3: Consul's "Missing node registration" (a session node
// registered in one datacenter, the session asked of another: the bug of
// issue 22, replayed through the library) is final within 2 s, however
// long the wait, and names consul.datacenter.
func fedMissingNode(t *testing.T, dc2srv *testcluster.Agent) {
	conf := api.DefaultNonPooledConfig()
	conf.Address, conf.Datacenter = dc2srv.Addr, "dc1"
	c, err := api.NewClient(conf)
	must(t, err)
	began := time.Now()
	_, err = consullock.Acquire(context.Background(), consullock.Config{
		Client: c, Datacenter: "dc2", // the node goes to dc2, the session to dc1
		Key: "fed-missing-node", Mode: consullock.Exclusive, Wait: time.Hour, Node: "repolock-fed-missing",
		Lease: consullock.Lease{TTL: 10 * time.Second, RenewInterval: 3 * time.Second, Margin: time.Second},
	})
	took := time.Since(began)
	var refused *consullock.RefusedError
	if !errors.As(err, &refused) || took > 2*time.Second || !strings.Contains(err.Error(), "Missing node registration") || !strings.Contains(err.Error(), "consul.datacenter") {
		t.Fatalf("acquire with the node in dc2 and the session in dc1: %v after %s, want a RefusedError within 2 s", err, took.Round(time.Millisecond))
	}
	if o := run.Of(err); o.Code != 69 {
		t.Errorf("outcome %+v, want exit 69", o)
	}
	t.Logf("refused after %s: %v", took.Round(time.Millisecond), err)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
