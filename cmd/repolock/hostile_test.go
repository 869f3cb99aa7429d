package main_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// Issue 23: what a plain KV write to a lock's folder does. Each case is a
// row of the table, replayed against a real agent: a holder whose
// command ignores SIGTERM, a waiter whose command records whether the
// holder's process was still alive when it started (overlap), and the
// hostile write in between.
func TestHostileWrites(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	env := srv.Env("")

	t.Run("holder's entry deleted", func(t *testing.T) {
		h := startHostile(t, env, c, "hostile-deleted", "exclusive", "exclusive")
		_, err := c.KV().Delete(h.holderEntry.Key, nil)
		must(t, err)
		h.check(t, "was deleted")
	})
	t.Run("holder's entry deleted, then acquired again with the holder's session", func(t *testing.T) {
		// The two-step write: the re-created entry's CreateIndex is behind
		// the waiter's, but its session's is not. The queue is the
		// sessions' (trust.go), so the waiter still waits for the holder.
		// Both steps in one transaction: no waiter sees the entry missing.
		h := startHostile(t, env, c, "hostile-two-step", "exclusive", "exclusive")
		ok, resp, _, err := c.Txn().Txn(api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: h.holderEntry.Key}},
			{KV: &api.KVTxnOp{Verb: api.KVLock, Key: h.holderEntry.Key, Session: h.holderEntry.Session, Value: h.holderEntry.Value}},
		}, nil)
		if err != nil || !ok {
			t.Fatalf("delete the holder's entry and acquire it again with its session: %v %v %+v", ok, err, resp)
		}
		h.check(t, "lock entry")
	})
	t.Run("a waiter's entry deleted", func(t *testing.T) {
		// Row 8: the waiter notices within a ttl at the latest,
		// writes its entry again (its place is its session's, kept), and
		// is back in status; then it runs once the holder has fenced.
		key := "hostile-waiter-deleted"
		h := startHostile(t, env, c, key, "exclusive", "exclusive")
		w := h.waiterEntry(t, c)
		_, err := c.KV().Delete(w.Key, nil)
		must(t, err)
		deleted := time.Now()
		for ; ; time.Sleep(20 * time.Millisecond) {
			if p, _, err := c.KV().Get(w.Key, nil); err == nil && p != nil {
				break
			}
			if time.Since(deleted) > 6*time.Second {
				t.Fatalf("the waiter's deleted entry is not back after %s (ttl 4s):\n%s", time.Since(deleted), h.waiter.stderr)
			}
		}
		t.Logf("the waiter's entry was back %s after the delete", time.Since(deleted).Round(time.Millisecond))
		if code, out := runRepolock(t, env, "status", key); code != 0 || strings.Count(out, "waiting") != 1 {
			t.Errorf("status: exit %d, want the waiter listed again:\n%s", code, out)
		}
		if !strings.Contains(h.waiter.stderr.String(), "own lock entry vanished") {
			t.Errorf("the waiter did not say that its entry vanished:\n%s", h.waiter.stderr)
		}
		_, err = c.KV().Delete(h.holderEntry.Key, nil)
		must(t, err)
		h.check(t, "was deleted")
	})
	t.Run("Consul restarted without its state", func(t *testing.T) {
		// Acceptance 3, row 5, on an agent of its own: a dev agent keeps
		// its state in memory only. The old holder's command is dead before
		// any new grant (the store has no epoch key: the waiter waits a
		// ttl), and the waiter, with wait left, queues again and runs.
		lost := testcluster.StartServer(t)
		lenv := lost.Env("")
		h := startHostile(t, lenv, lost.Client(t), "hostile-lost-state", "exclusive", "exclusive")
		lost.Kill(t)
		lost.Restart(t)
		h.check(t, "lock lost")
		if !strings.Contains(h.waiter.stderr.String(), "no epoch key") {
			t.Errorf("the waiter did not wait for the epoch:\n%s", h.waiter.stderr)
		}
	})
	t.Run("holder's entry released by kv put -release", func(t *testing.T) {
		h := startHostile(t, env, c, "hostile-released", "exclusive", "exclusive")
		_, _, err := c.KV().Release(&api.KVPair{Key: h.holderEntry.Key, Session: h.holderEntry.Session, Value: h.holderEntry.Value}, nil)
		must(t, err)
		h.check(t, "was released by a KV write")
	})
	t.Run("exclusive holder's value rewritten to shared", func(t *testing.T) {
		h := startHostile(t, env, c, "hostile-mode-flip", "exclusive", "shared")
		v := bytes.Replace(h.holderEntry.Value, []byte(`"mode":"exclusive"`), []byte(`"mode":"shared"`), 1)
		_, err := c.KV().Put(&api.KVPair{Key: h.holderEntry.Key, Value: v}, nil) // a plain PUT keeps the session
		must(t, err)
		h.check(t, "was rewritten by a KV write")
	})
	t.Run("exclusive waiter's value rewritten to shared, then the shared holder's", func(t *testing.T) {
		h := startHostile(t, env, c, "hostile-waiter-flip", "shared", "exclusive")
		w := h.waiterEntry(t, c)
		_, err := c.KV().Put(&api.KVPair{Key: w.Key, Value: bytes.Replace(w.Value, []byte(`"mode":"exclusive"`), []byte(`"mode":"shared"`), 1)}, nil)
		must(t, err)
		_, err = c.KV().Put(&api.KVPair{Key: h.holderEntry.Key, Value: append(h.holderEntry.Value, ' ')}, nil)
		must(t, err)
		h.check(t, "was rewritten by a KV write")
	})
	t.Run("kv delete -recurse of the prefix, and a contender after it", func(t *testing.T) {
		// Acceptance 2: the waiter's own entry goes too; it queues again and
		// runs within its wait. A contender that comes after the delete never
		// saw the holder's entry: the holder's session still holds it back.
		h := startHostile(t, env, c, "hostile-recurse", "exclusive", "exclusive")
		_, err := c.KV().DeleteTree(consullock.DefaultPrefix+"/", nil)
		must(t, err)
		late := filepath.Join(t.TempDir(), "late")
		p := start(t, env, append(append([]string{"exec", "-key", "hostile-recurse", "-mode", "exclusive", "-wait", "30s"}, rotationFlags...),
			"--", "sh", "-c", overlapScript(h.pidFile, late))...)
		h.check(t, "was deleted")
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("the contender that came after the delete exited %d, want 0:\n%s", code, p.stderr)
		}
		if got := strings.TrimSpace(waitFile(t, late, time.Second)); got != "alone" {
			t.Errorf("the contender that came after the delete ran beside the holder: %s", got)
		}
	})
	t.Run("a garbage entry named .. makes no watch spin", func(t *testing.T) {
		// Row 6: the entry's path cleans to another key; a waiter blocking
		// on it would read in a loop. Names that are not a session ID are
		// not contenders: the waiter blocks on the holder only.
		proxy := testcluster.StartProxy(t, srv)
		penv := []string{"CONSUL_HTTP_ADDR=" + proxy.Addr}
		key := "hostile-dotdot"
		garbage := func() {
			sid, _, err := c.Session().CreateNoChecks(&api.SessionEntry{Name: "garbage", TTL: "30s"}, nil)
			must(t, err)
			// A raw request: consul/api would escape the dots' percent signs.
			u := "http://" + srv.Addr + "/v1/kv/" + consullock.RepoPrefix("", key) + "lock/%2E%2E?acquire=" + sid
			req, err := http.NewRequest(http.MethodPut, u, strings.NewReader("x"))
			must(t, err)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("acquire the garbage entry: %v %v", resp, err)
			}
			resp.Body.Close()
		}
		h := startHostileWith(t, penv, c, key, "exclusive", "exclusive", garbage, 1)
		before := proxy.KVReads.Load()
		time.Sleep(2 * time.Second)
		if reads := proxy.KVReads.Load() - before; reads > 20 {
			t.Errorf("the waiter read KV %d times in 2 s behind a garbage entry, want a blocking watch", reads)
		}
		_, err := c.KV().Delete(h.holderEntry.Key, nil)
		must(t, err)
		h.check(t, "was deleted")
	})
	t.Run("break leaves another key's session alone", func(t *testing.T) {
		// Row 7: an entry under KEY acquired with the holder session of
		// another key. break KEY destroys only KEY's contenders, and names
		// what it skipped.
		beats := filepath.Join(t.TempDir(), "beats")
		other := start(t, env, append(append([]string{"exec", "-key", "hostile-other", "-mode", "exclusive"}, rotationFlags...),
			"--", "sh", "-c", heartbeatScript(beats, 0))...)
		waitFile(t, beats, 10*time.Second)
		entries, _, err := c.KV().List(consullock.RepoPrefix("", "hostile-other")+"lock/", nil)
		must(t, err)
		if len(entries) != 1 {
			t.Fatalf("hostile-other has %d entries, want its holder's", len(entries))
		}
		ok, _, err := c.KV().Acquire(&api.KVPair{Key: consullock.RepoPrefix("", "hostile-break") + "lock/" + entries[0].Session,
			Session: entries[0].Session, Value: []byte(`{"mode":"exclusive","state":"holding"}`)}, nil)
		if err != nil || !ok {
			t.Fatalf("acquire with another key's session: %v %v", ok, err)
		}
		code, out := runRepolock(t, env, "break", "hostile-break")
		if code != 0 || !strings.Contains(out, "skipped") || strings.Contains(out, "destroyed session "+entries[0].Session) {
			t.Errorf("break hostile-break: exit %d, want 0, skipping the other key's session:\n%s", code, out)
		}
		time.Sleep(time.Second)
		select {
		case <-other.done:
			t.Errorf("break of another key ended hostile-other's holder: exit %d:\n%s", other.code, other.stderr)
		default:
		}
		_ = other.cmd.Process.Signal(os.Interrupt)
		other.wait(t, 10*time.Second)
	})
	t.Run("status and break escape what they read", func(t *testing.T) {
		// Row 11: a holder entry whose host has escape sequences and a
		// newline, pid -5, token 2^64-1. status and break print it escaped,
		// and the token they show is its session's CreateIndex.
		key := "hostile-escape"
		sid, _, err := c.Session().CreateNoChecks(&api.SessionEntry{Name: "repolock exclusive " + key, TTL: "30s"}, nil)
		must(t, err)
		val := `{"mode":"exclusive","state":"holding","holder":{"user":"root","host":"web-1\u001b[2K\r\nspoofed\tholding\texclusive","pid":-5},"fencing_token":18446744073709551615}`
		entry := consullock.RepoPrefix("", key) + "lock/" + sid
		ok, _, err := c.KV().Acquire(&api.KVPair{Key: entry, Session: sid, Value: []byte(val)}, nil)
		if err != nil || !ok {
			t.Fatalf("acquire %s: %v %v", entry, ok, err)
		}
		info, _, err := c.Session().Info(sid, nil)
		if err != nil || info == nil {
			t.Fatalf("session %s: %v %v", sid, info, err)
		}
		token := info.CreateIndex // the holder's place in the queue, and its fencing token
		code, out := runRepolock(t, env, "status", key)
		if code != 0 || strings.ContainsAny(out, "\x1b\r") || strings.Contains(out, "\nspoofed") || strings.Contains(out, "18446744073709551615") ||
			!strings.Contains(out, fmt.Sprint(token)) {
			t.Errorf("status: exit %d, want the host escaped and token %d:\n%q", code, token, out)
		}
		code, out = runRepolock(t, env, "break", key)
		if code != 0 || strings.ContainsAny(out, "\x1b\r") || strings.Contains(out, "\nspoofed") || !strings.Contains(out, fmt.Sprintf("fencing token %d", token)) {
			t.Errorf("break: exit %d, want the host escaped and token %d:\n%q", code, token, out)
		}
	})
	t.Run("three shared jobs end together: no success lost", func(t *testing.T) {
		// Row 9: the last record is a read-modify-write; without a
		// compare-and-set one job's success was lost in 5 of 6 trials.
		// Each command waits for a file the test makes once all three
		// hold the lock, so that they end within milliseconds.
		barrier := filepath.Join(t.TempDir(), "go")
		wait := fmt.Sprintf(`["sh", "-c", "while [ ! -e %s ]; do sleep 0.005; done"]`, barrier)
		cfg := writeConfig(t, strings.ReplaceAll(`repository "r" {
  tool     = "exec"
  location = "/srv/hostile-shared"
  lock_key = "hostile-shared"
}
job "a" {
  repository   = "r"
  mode         = "shared"
  command      = ["sleep", "0.5"]
  expect_every = "1h"
}
job "b" {
  repository   = "r"
  mode         = "shared"
  command      = ["sleep", "0.5"]
  expect_every = "1h"
}
job "c" {
  repository   = "r"
  mode         = "shared"
  command      = ["sleep", "0.5"]
  expect_every = "1h"
}
`, `["sleep", "0.5"]`, wait))
		for trial := range 4 {
			_ = os.Remove(barrier)
			var ps []*proc
			for _, job := range []string{"a", "b", "c"} {
				ps = append(ps, start(t, env, "run", "-config", cfg, job))
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if pairs, _, _ := c.KV().List(consullock.RepoPrefix("", "hostile-shared")+"lock/", nil); len(pairs) == 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the three shared jobs do not hold the lock together")
				}
			}
			time.Sleep(100 * time.Millisecond) // their commands started
			must(t, os.WriteFile(barrier, nil, 0o644))
			for _, p := range ps {
				if code := p.wait(t, 30*time.Second); code != 0 {
					t.Fatalf("trial %d: %v exited %d:\n%s", trial, p.cmd.Args, code, p.stderr)
				}
			}
			l := lastRun(t, c, "hostile-shared")
			if len(l.LastSuccess) != 3 {
				t.Errorf("trial %d: last record has the successes of %v, want a, b and c", trial, l.LastSuccess)
			}
			if code, out := runRepolock(t, env, "status", "-config", cfg); code != 0 {
				t.Errorf("trial %d: status exit %d, want 0 with every job's success recorded:\n%s", trial, code, out)
			}
		}
	})
	t.Run("a last success forged in 2099", func(t *testing.T) {
		// Row 10: flagged implausible, status exits 1 for the job with
		// expect_every, and the time is not carried forward.
		cfg := writeConfig(t, `repository "r" {
  tool     = "exec"
  location = "/srv/hostile-forged"
  lock_key = "hostile-forged"
}
job "j" {
  repository   = "r"
  mode         = "exclusive"
  command      = ["false"]
  expect_every = "1h"
}
`)
		_, err := c.KV().Put(&api.KVPair{Key: consullock.RepoPrefix("", "hostile-forged") + "last",
			Value: []byte(`{"job":"j","mode":"exclusive","exit":0,"class":"success","fencing_token":1,"last_success":{"j":"2099-01-01T00:00:00Z"}}`)}, nil)
		must(t, err)
		code, out := runRepolock(t, env, "status", "-config", cfg)
		if code != 1 || !strings.Contains(out, "implausible") || strings.Contains(out, "-6") {
			t.Errorf("status with a forged future success: exit %d, want 1 naming it implausible:\n%s", code, out)
		}
		if code, out := runRepolock(t, env, "run", "-config", cfg, "j"); code != 1 {
			t.Fatalf("run j: exit %d, want the command's 1:\n%s", code, out)
		}
		if l := lastRun(t, c, "hostile-forged"); len(l.LastSuccess) != 0 {
			t.Errorf("the forged success was carried forward: %v", l.LastSuccess)
		}
	})
	t.Run("break removes an entry released by kv put -release", func(t *testing.T) {
		// Row 12: released, the entry has no session and stays forever.
		key := "hostile-leftover"
		entry := consullock.RepoPrefix("", key) + "lock/" + "0f663746-c183-4ffc-c901-107753882cce"
		_, err := c.KV().Put(&api.KVPair{Key: entry, Value: []byte(`{"mode":"exclusive"}`)}, nil)
		must(t, err)
		code, out := runRepolock(t, env, "break", key)
		if code != 0 || !strings.Contains(out, "removed") {
			t.Errorf("break %s: exit %d, want the leftover removed:\n%s", key, code, out)
		}
		if p, _, _ := c.KV().Get(entry, nil); p != nil {
			t.Errorf("the leftover entry %s is still there", entry)
		}
	})
}

// hostile is a holder whose command ignores SIGTERM and SIGINT, and a
// waiter queued behind it whose command records whether the holder's
// process was still alive when it started.
type hostile struct {
	holder, waiter  *proc
	pidFile, result string
	holderEntry     *api.KVPair
}

// overlapScript writes "overlap" to result when the process in pidFile is
// alive, else "alone".
func overlapScript(pidFile, result string) string {
	return fmt.Sprintf(`if kill -0 "$(cat %s)" 2>/dev/null; then echo overlap; else echo alone; fi > %s`, pidFile, result)
}

func startHostile(t *testing.T, env []string, c *api.Client, key, holderMode, waiterMode string) *hostile {
	t.Helper()
	return startHostileWith(t, env, c, key, holderMode, waiterMode, func() {}, 0)
}

// startHostileWith is startHostile with before run once the holder runs
// and before the waiter starts, making extra entries under the key.
func startHostileWith(t *testing.T, env []string, c *api.Client, key, holderMode, waiterMode string, before func(), extra int) *hostile {
	t.Helper()
	dir := t.TempDir()
	h := &hostile{pidFile: filepath.Join(dir, "holder.pid"), result: filepath.Join(dir, "result")}
	h.holder = start(t, env, append(append([]string{"exec", "-key", key, "-mode", holderMode}, rotationFlags...),
		"--", "sh", "-c", fmt.Sprintf(`trap '' TERM INT; echo $$ > %s; while :; do sleep 0.05; done`, h.pidFile))...)
	waitFile(t, h.pidFile, 10*time.Second)
	before()
	h.waiter = start(t, env, append(append([]string{"exec", "-key", key, "-mode", waiterMode, "-wait", "30s"}, rotationFlags...),
		"--", "sh", "-c", overlapScript(h.pidFile, h.result))...)
	folder := consullock.RepoPrefix("", key) + "lock/"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pairs, _, err := c.KV().List(folder, nil)
		must(t, err)
		if len(pairs) == 2+extra {
			for _, p := range pairs {
				if h.holderEntry == nil || p.CreateIndex < h.holderEntry.CreateIndex {
					h.holderEntry = p
				}
			}
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d entries, want the holder's and the waiter's:\nholder:\n%s\nwaiter:\n%s", key, len(pairs), h.holder.stderr, h.waiter.stderr)
		}
	}
}

// waiterEntry is the waiter's entry, the one that is not the holder's.
func (h *hostile) waiterEntry(t *testing.T, c *api.Client) *api.KVPair {
	t.Helper()
	pairs, _, err := c.KV().List(filepath.Dir(h.holderEntry.Key)+"/", nil)
	must(t, err)
	for _, p := range pairs {
		if p.Key != h.holderEntry.Key {
			return p
		}
	}
	t.Fatal("no waiter entry")
	return nil
}

// check: the holder fences (76, naming event), the waiter runs only once
// the holder's process is dead, and exits 0.
func (h *hostile) check(t *testing.T, event string) {
	t.Helper()
	if code := h.holder.wait(t, 30*time.Second); code != 76 || !strings.Contains(h.holder.stderr.String(), event) {
		t.Errorf("holder: exit %d, want 76 naming %q:\n%s", code, event, h.holder.stderr)
	}
	if code := h.waiter.wait(t, 30*time.Second); code != 0 {
		t.Errorf("waiter: exit %d, want 0:\n%s", code, h.waiter.stderr)
	}
	if got := strings.TrimSpace(waitFile(t, h.result, time.Second)); got != "alone" {
		t.Errorf("the waiter ran beside the holder (%s):\nholder:\n%s\nwaiter:\n%s", got, h.holder.stderr, h.waiter.stderr)
	}
}
