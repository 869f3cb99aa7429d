package main_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/history"
	"github.com/repolock/repolock/internal/testcluster"
)

// Issue 8 acceptances 8 and 9: the standalone consul-template example
// renders repolock's config and the password from Consul KV and runs a real
// backup under its exec mode; a config change during a run ends that run
// cleanly and the next run uses the new config; the status template renders
// the real last records.
func TestConsulTemplateExec(t *testing.T) {
	srv := testcluster.StartServer(t)
	c := srv.Client(t)
	ct := testcluster.Binary(t, "consul-template")
	repo, pwfile, small := resticRepo(t)
	big := filepath.Join(t.TempDir(), "big")
	must(t, os.MkdirAll(big, 0o755))
	blob := make([]byte, 4<<20)
	_, _ = rand.Read(blob)
	must(t, os.WriteFile(filepath.Join(big, "blob"), blob, 0o644))
	resticBin := testcluster.Binary(t, "restic")
	put := func(k, v string) {
		t.Helper()
		_, err := c.KV().Put(&api.KVPair{Key: k, Value: []byte(v)}, nil)
		must(t, err)
	}
	put("repolock/config/photos/location", repo)
	put("repolock/secrets/photos/password", resticPassword)
	// A slow first run: uploads rate-limited.
	put("repolock/config/photos/command", resticBin+" backup --limit-upload 64 "+big)

	dir := t.TempDir()
	for _, f := range []string{"backup.hcl", "repolock.hcl.ctmpl", "restic-pass.ctmpl"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "jobspecs", "consul-template", f))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	cmd := exec.Command(ct, "-config", "backup.hcl")
	cmd.Dir = dir
	cmd.Env = append(testcluster.CleanEnv(), srv.Env("")...)
	cmd.Env = append(cmd.Env, "REPOLOCK_SECRETS="+dir, "PATH="+filepath.Dir(binary)+":"+os.Getenv("PATH"))
	out := &testcluster.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})

	waitLocks(t, repo) // the first run is backing up
	key := repoKey(t, srv.Env(""), filepath.Join(dir, "config.hcl"))
	// The rendered password file: 0400, the password and nothing else.
	if st, err := os.Stat(filepath.Join(dir, "restic-pass")); err != nil || st.Mode().Perm() != 0o400 {
		t.Fatalf("password file: %v %v, want mode 0400", st, err)
	}
	put("repolock/config/photos/command", resticBin+" backup "+small)

	// The interrupted run's record, then the next run's.
	var interrupted history.Run
	for deadline := time.Now().Add(40 * time.Second); interrupted.InterruptedBy == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no record of the interrupted run:\n%s", out)
		}
		if p, _, _ := c.KV().Get(consullock.RepoPrefix("", key)+"last", nil); p != nil {
			_ = json.Unmarshal(p.Value, &interrupted)
		}
	}
	if interrupted.Exit == 0 || interrupted.InterruptedBy != "SIGTERM" {
		t.Errorf("the interrupted run was recorded as %+v, want a non-zero exit and interrupted_by SIGTERM", interrupted)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("consul-template: %v\n%s", waitErr, out)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("consul-template did not end with the second run:\n%s", out)
	}
	last := lastRun(t, c, key)
	if last.Exit != 0 || last.InterruptedBy != "" || !last.Started.After(interrupted.Ended) {
		t.Fatalf("the run on the new config: %+v", last)
	}
	snaps := restic(t, repo, pwfile, nil, "snapshots", "--json", "--latest", "1")
	if !strings.Contains(snaps, small) {
		t.Errorf("the last snapshot is not of the new config's path %s: %s", small, snaps)
	}
	if locks := resticLocks(repo); len(locks) != 0 {
		t.Errorf("restic locks left: %q", locks)
	}
	if strings.Contains(out.String(), resticPassword) {
		t.Error("the password is in the output")
	}
	t.Logf("interrupted run: exit %d, interrupted_by %s; next run exit %d on the new config", interrupted.Exit, interrupted.InterruptedBy, last.Exit)

	// The status template, from these real records and a live holder.
	ready := filepath.Join(t.TempDir(), "ready")
	holder := start(t, srv.Env(""), "exec", "-key", "held-now", "--", "sh", "-c", "echo 1 > "+ready+"; sleep 30")
	waitFile(t, ready, 10*time.Second)
	prom := filepath.Join(t.TempDir(), "repolock.prom")
	render := exec.Command(ct, "-once", "-template", filepath.Join("..", "..", "jobspecs", "consul-template", "status.ctmpl")+":"+prom)
	render.Env = append(testcluster.CleanEnv(), srv.Env("")...)
	if b, err := render.CombinedOutput(); err != nil {
		t.Fatalf("render status: %v\n%s", err, b)
	}
	b, err := os.ReadFile(prom)
	must(t, err)
	for _, want := range []string{
		fmt.Sprintf(`repolock_last_exit_code{key=%q,job="backup",mode="shared",class="success"} 0`, key),
		`repolock_holders{key="held-now"} 1`,
		fmt.Sprintf(`repolock_holders{key=%q} 0`, key),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status page lacks %q:\n%s", want, b)
		}
	}
	_ = holder.cmd.Process.Signal(os.Interrupt)
	holder.wait(t, 20*time.Second)
}
