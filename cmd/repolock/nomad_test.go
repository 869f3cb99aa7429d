package main_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/plan"
	"github.com/repolock/repolock/internal/testcluster"
)

// nomadSuite is a production-shaped pair: a Consul agent with ACLs (default
// deny), HTTPS only and verify_incoming; a Nomad dev agent with ACLs
// bootstrapped, holding its own Consul token; and a restic repository
// whose password and repolock's Consul token live in the jobs' Nomad
// Variables, filled in as the README says.
type nomadSuite struct {
	srv                *testcluster.Agent
	c                  *api.Client // the management token's
	nomad              *testcluster.Nomad
	repo, pwfile, data string
	execData           string   // the exec driver's data: a host volume
	token              string   // repolock's Consul token (acl-policy for the repository)
	vars               []string // the -var flags every job file gets
}

func newNomadSuite(t *testing.T) *nomadSuite {
	pki := testcluster.NewPKI(t)
	srv := testcluster.StartServer(t, testcluster.WithACL(), testcluster.WithTLS(pki))
	s := &nomadSuite{srv: srv, c: srv.Client(t)}
	s.repo, s.pwfile, s.data = resticRepo(t)
	s.execData = t.TempDir()
	// Under exec, tasks see only their chroot: repolock comes as an
	// artifact, restic and the TLS files through chroot_env, the repository
	// and the data through host volumes, each at its path on the host.
	chroot := chrootFor(t, testcluster.Binary(t, "restic"))
	for _, f := range []string{pki.CA, pki.ClientCert, pki.ClientKey, "/etc/passwd", "/etc/group"} {
		chroot[f] = f
	}
	s.nomad = testcluster.StartNomad(t, srv, testcluster.NomadWithACL(), testcluster.NomadChroot(chroot),
		testcluster.NomadHostVolume("restic-repo", s.repo), testcluster.NomadHostVolume("backup-data", s.execData))

	// The README's token step: the policy acl-policy prints for this
	// repository, a token of it in the jobs' Variables next to the password.
	code, policy := runRepolock(t, srv.Env(testcluster.ManagementToken), "acl-policy", "-config", s.repoConfig(t), "r")
	if code != 0 {
		t.Fatalf("acl-policy: exit %d:\n%s", code, policy)
	}
	s.token = testcluster.PolicyToken(t, s.c, "repolock-nomad", policy).SecretID
	s.vars = []string{"-var", "repository=" + s.repo, "-var", "repolock=" + binary,
		"-var", "restic=" + testcluster.Binary(t, "restic"), "-var", "consul_addr=https://" + srv.Addr,
		"-var", "consul_cacert=" + pki.CA, "-var", "consul_client_cert=" + pki.ClientCert, "-var", "consul_client_key=" + pki.ClientKey}
	readJob := filepath.Join(t.TempDir(), "read-job.hcl")
	must(t, os.WriteFile(readJob, []byte(`namespace "default" { capabilities = ["read-job"] }`), 0o644))
	// The short kill_timeout job locks a key of its own: the README's
	// policy for every repository.
	anyRepo := testcluster.PolicyToken(t, s.c, "repolock-any", testcluster.ReadmePolicy).SecretID
	for job, token := range map[string]string{"restic-backup": s.token, "restic-prune": s.token, "short-kill": anyRepo} {
		s.nomad.PutVar(t, "nomad/jobs/"+job, map[string]string{"password": resticPassword, "consul_token": token})
		// The Task API's kill_timeout read (README "Running under Nomad").
		s.nomad.MustCLI(t, "acl", "policy", "apply", "-namespace", "default", "-job", job, job+"-read-job", readJob)
	}
	return s
}

// repoConfig is a config naming the suite's repository, for the commands
// the test runs beside the jobs.
func (s *nomadSuite) repoConfig(t *testing.T) string {
	return writeConfig(t, fmt.Sprintf("repository \"r\" {\n  tool = \"restic\"\n  location = %q\n}\n", s.repo))
}

// env is the environment of repolock commands the test runs beside the
// jobs, with repolock's token.
func (s *nomadSuite) env() []string { return s.srv.Env(s.token) }

// secrets are the values no log, KV entry or status may show.
func (s *nomadSuite) secrets() map[string]string {
	return map[string]string{"the restic password": resticPassword, "repolock's Consul token": s.token,
		"the Nomad token": s.nomad.Token, "the Consul management token": testcluster.ManagementToken}
}

// noSecrets fails the test when text (what) shows one of the secrets.
func (s *nomadSuite) noSecrets(t *testing.T, what, text string) {
	t.Helper()
	for name, v := range s.secrets() {
		if strings.Contains(text, v) {
			t.Errorf("%s is in %s", name, what)
		}
	}
}

// chrootFor maps the binaries and the shared libraries they load (ldd)
// into an exec task's chroot, each at its path on the host. A path through
// a symbolic link (/lib64 -> usr/lib64) is copied from the file it leads
// to: chroot_env would copy the link, which leads nowhere in the chroot.
func chrootFor(t *testing.T, bins ...string) map[string]string {
	m := map[string]string{}
	add := func(f string) {
		real, err := filepath.EvalSymlinks(f)
		must(t, err)
		m[real] = f
	}
	for _, bin := range bins {
		add(bin)
		out, err := exec.Command("ldd", bin).Output()
		if err != nil {
			continue // static: nothing to load
		}
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				add(f)
			}
		}
	}
	return m
}

func jobFile(name string) string { return filepath.Join("..", "..", "jobspecs", name+".nomad.hcl") }

func (s *nomadSuite) run(t *testing.T, file string, extra ...string) {
	t.Helper()
	args := append(append([]string{"job", "run", "-detach"}, s.vars...), extra...)
	s.nomad.MustCLI(t, append(args, file)...)
}

// logs is an allocation's task log (stderr: repolock's JSON lines).
func (s *nomadSuite) logs(t *testing.T, alloc, task string, stderr bool) string {
	t.Helper()
	args := []string{"alloc", "logs"}
	if stderr {
		args = append(args, "-stderr")
	}
	out, _ := s.nomad.CLI(t, append(args, alloc, task)...)
	return out
}

// heldInterval is when repolock's command used the repository, from its
// JSON log: from the grant to the moment the command's whole group was
// gone. ("lock released" is logged after the destroy that already granted
// the next holder, so it may come after the next "lock acquired".)
func heldInterval(t *testing.T, log string) (from, to time.Time) {
	t.Helper()
	return logTime(t, log, "lock acquired"), logTime(t, log, "command finished")
}

// Issue 8: the job files, run by a real Nomad agent with real restic.
func TestNomadJobs(t *testing.T) {
	s := newNomadSuite(t)
	key := repoKey(t, s.env(), s.repoConfig(t))

	t.Run("validate", func(t *testing.T) {
		// Acceptance 1: every job file validates with the variables filled in.
		files, _ := filepath.Glob(jobFile("*"))
		if len(files) < 4 {
			t.Fatalf("%d job files, want at least 4", len(files))
		}
		for _, f := range files {
			args := append([]string{"job", "validate"}, s.vars...)
			if strings.Contains(f, "backup") || strings.Contains(f, "borg-create") {
				args = append(args, "-var", `paths=["`+s.data+`"]`)
			}
			if strings.Contains(f, "borg") {
				args = []string{"job", "validate", "-var", "repository=/srv/borg", "-var", `paths=["/d"]`}
			}
			s.nomad.MustCLI(t, append(args, f)...)
			// Under exec too: the driver, its user, a host volume, repolock
			// from an artifact.
			s.nomad.MustCLI(t, append(append(args, "-var", "driver=exec", "-var", "repolock_artifact=https://releases.example/repolock.tar.gz",
				"-var", `host_volumes={"repo"="/srv/repo"}`), f)...)
		}
		if out, err := s.nomad.CLI(t, append(append([]string{"job", "validate"}, s.vars...), "-var", `paths=["/d"]`, "-var", "driver=docker", jobFile("restic-backup"))...); err == nil || !strings.Contains(out, "raw_exec") {
			t.Errorf("restic-backup with driver=docker validates, want the driver's validation error:\n%s", out)
		}
	})

	t.Run("backup and prune forced together", func(t *testing.T) {
		// Acceptance 2: forced at once, one waits for the other; both
		// complete, the snapshot exists, and the lock intervals are apart.
		s.run(t, jobFile("restic-backup"), "-var", `paths=["`+s.data+`"]`)
		s.run(t, jobFile("restic-prune"), "-var", `keep=["--keep-last","5"]`)
		var wg sync.WaitGroup
		for _, job := range []string{"restic-backup", "restic-prune"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.nomad.MustCLI(t, "job", "periodic", "force", "-detach", job)
			}()
		}
		wg.Wait()
		type held struct{ from, to time.Time }
		var intervals []held
		for job, task := range map[string]string{"restic-backup": "backup", "restic-prune": "prune"} {
			allocs := s.nomad.WaitAllocs(t, job, 1, 2*time.Minute)
			a := allocs[0]
			log := s.logs(t, a.ID, task, true)
			if a.ClientStatus != "complete" {
				t.Fatalf("%s allocation %s, want complete:\n%s", job, a.ClientStatus, log)
			}
			from, to := heldInterval(t, log)
			intervals = append(intervals, held{from, to})
		}
		a, b := intervals[0], intervals[1]
		if a.from.Before(b.to) && b.from.Before(a.to) {
			t.Fatalf("the backup and the prune held the lock at once: %v and %v", a, b)
		}
		if snaps := restic(t, s.repo, s.pwfile, nil, "snapshots", "--json"); !strings.Contains(snaps, `"id"`) {
			t.Fatalf("no snapshot after the forced backup: %s", snaps)
		}
	})

	t.Run("stop mid-backup", func(t *testing.T) {
		// Acceptances 4, 6 and 7: a slow backup (its uploads rate-limited)
		// is running; status and the holder record name its allocation;
		// the password is nowhere but in its file; nomad job stop ends it
		// through repolock, which releases and records an interrupted run.
		big := filepath.Join(t.TempDir(), "big")
		must(t, os.MkdirAll(big, 0o755))
		blob := make([]byte, 4<<20) // random: restic can neither dedupe nor compress it
		_, _ = rand.Read(blob)
		must(t, os.WriteFile(filepath.Join(big, "blob"), blob, 0o644))
		s.run(t, jobFile("restic-backup"), "-var", `paths=["`+big+`"]`, "-var", `backup_flags=["--limit-upload","64"]`)
		s.nomad.MustCLI(t, "job", "periodic", "force", "-detach", "restic-backup")
		var alloc testcluster.Alloc
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no running backup holding a restic lock")
			}
			for _, a := range s.nomad.Allocs(t, "restic-backup") {
				if a.ClientStatus == "running" {
					alloc = a
				}
			}
			if alloc.ID != "" && len(resticLocks(s.repo)) > 0 {
				break
			}
		}
		// Who holds it.
		code, status := runRepolock(t, s.env(), "status", "-json", key)
		if code != 0 || !strings.Contains(status, alloc.ID) || !strings.Contains(status, `"nomad_task_name": "backup"`) ||
			!strings.Contains(status, `"nomad_job_id": "`+alloc.JobID) {
			t.Errorf("status does not name the allocation %s (job %s, task backup):\n%s", alloc.ID, alloc.JobID, status)
		}
		// Secrets: argv and environment of every process of the
		// allocation, KV, status, the allocation's logs.
		checked := 0
		procs, _ := filepath.Glob("/proc/[0-9]*/environ")
		for _, p := range procs {
			env, err := os.ReadFile(p)
			if err != nil || !bytes.Contains(env, []byte("NOMAD_ALLOC_ID="+alloc.ID)) {
				continue
			}
			argv, _ := os.ReadFile(strings.TrimSuffix(p, "environ") + "cmdline")
			checked++
			s.noSecrets(t, p+"'s argv or environment", string(argv)+"\n"+string(env))
		}
		if checked < 2 {
			t.Errorf("found %d processes of the allocation, want repolock and restic at least", checked)
		}
		pairs, _, _ := s.c.KV().List("", nil)
		for _, kv := range pairs {
			s.noSecrets(t, "KV at "+kv.Key, string(kv.Value))
		}
		s.noSecrets(t, "repolock status", status)

		stopped := time.Now()
		s.nomad.MustCLI(t, "job", "stop", "-detach", alloc.JobID)
		s.nomad.WaitAllocs(t, alloc.JobID, 1, time.Minute)
		log := s.logs(t, alloc.ID, "backup", true) + s.logs(t, alloc.ID, "backup", false)
		s.noSecrets(t, "the allocation's logs", log)
		t.Logf("the stopped backup's log:\n%s", log)
		if !strings.Contains(log, "forwarding signal to the command's process group") || !strings.Contains(log, "lock released") {
			t.Fatalf("repolock did not forward the stop and release:\n%s", log)
		}
		l := lastRun(t, s.c, key)
		if l.Exit == 0 || l.InterruptedBy != "SIGINT" || l.Ended.Before(stopped) || l.Ended.Sub(stopped) > 30*time.Second {
			t.Errorf("last run %+v, want an interrupted, non-zero run that ended within Nomad's kill_timeout of the stop", l)
		}
		if ids := resticLocks(s.repo); len(ids) != 0 {
			t.Errorf("restic locks left after the stop: %q", ids)
		}
		if entries, _, _ := s.c.KV().List(consullock.RepoPrefix("", key)+"lock/", nil); len(entries) != 0 {
			t.Errorf("the lock is still held after the stop: %v", entries)
		}
		t.Logf("stopped: %s exit %d (%s), %s after the stop", alloc.ID[:8], l.Exit, l.Class, l.Ended.Sub(stopped).Round(time.Millisecond))
	})

	t.Run("exec driver", func(t *testing.T) {
		// Issue 16 acceptance 7: restic-backup under the exec driver, as
		// nobody in a chroot: repolock from an artifact, restic from the
		// client's chroot_env, the repository and the data as host volumes.
		// One backup completes; a second, slow one is stopped midway and
		// frees the lock, leaving no restic lock; its holder record names
		// the allocation.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/gzip")
			writeTarGz(t, w, "repolock", binary)
		}))
		defer srv.Close()
		small, big := filepath.Join(s.execData, "small"), filepath.Join(s.execData, "big")
		for _, d := range []string{small, big} {
			must(t, os.MkdirAll(d, 0o755))
		}
		must(t, os.WriteFile(filepath.Join(small, "f"), []byte("under exec\n"), 0o644))
		blob := make([]byte, 4<<20)
		_, _ = rand.Read(blob)
		must(t, os.WriteFile(filepath.Join(big, "blob"), blob, 0o644))
		must(t, os.Chmod(s.execData, 0o755))
		// The repository belongs to the task's user, as on a backup host.
		must(t, filepath.Walk(s.repo, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, 65534, 65534)
		}))
		execVars := []string{"-var", "driver=exec", "-var", "repolock_artifact=" + srv.URL + "/repolock.tar.gz",
			"-var", fmt.Sprintf(`host_volumes={"restic-repo"=%q,"backup-data"=%q}`, s.repo, s.execData)}
		s.run(t, jobFile("restic-backup"), append(execVars, "-var", `paths=["`+small+`"]`)...)
		old := s.allocIDs(t, "restic-backup")
		s.nomad.MustCLI(t, "job", "periodic", "force", "-detach", "restic-backup")
		a := s.waitNewAlloc(t, "restic-backup", old, true)
		log := s.logs(t, a.ID, "backup", true)
		if a.ClientStatus != "complete" || !strings.Contains(log, "lock released") {
			t.Fatalf("restic-backup under exec ended %s, want complete:\n%s%s", a.ClientStatus, log, s.logs(t, a.ID, "backup", false))
		}
		if snaps := restic(t, s.repo, s.pwfile, nil, "snapshots", "--json", "--path", small); !strings.Contains(snaps, `"id"`) {
			t.Fatalf("no snapshot of %s after the backup under exec: %s", small, snaps)
		}
		s.noSecrets(t, "the exec allocation's logs", log+s.logs(t, a.ID, "backup", false))

		s.run(t, jobFile("restic-backup"), append(execVars, "-var", `paths=["`+big+`"]`, "-var", `backup_flags=["--limit-upload","64"]`)...)
		old = s.allocIDs(t, "restic-backup")
		s.nomad.MustCLI(t, "job", "periodic", "force", "-detach", "restic-backup")
		a = s.waitNewAlloc(t, "restic-backup", old, false)
		for deadline := time.Now().Add(time.Minute); len(resticLocks(s.repo)) == 0; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the backup under exec took no restic lock:\n%s", s.logs(t, a.ID, "backup", true))
			}
		}
		if code, status := runRepolock(t, s.env(), "status", "-json", key); code != 0 || !strings.Contains(status, a.ID) {
			t.Errorf("status does not name the exec allocation %s:\n%s", a.ID, status)
		}
		s.nomad.MustCLI(t, "job", "stop", "-detach", a.JobID)
		s.nomad.WaitAllocs(t, a.JobID, 1, time.Minute)
		log = s.logs(t, a.ID, "backup", true)
		if !strings.Contains(log, "forwarding signal to the command's process group") || !strings.Contains(log, "lock released") {
			t.Errorf("repolock under exec did not forward the stop and release:\n%s", log)
		}
		if ids := resticLocks(s.repo); len(ids) != 0 {
			t.Errorf("restic locks left after the stop under exec: %q", ids)
		}
		if entries, _, _ := s.c.KV().List(consullock.RepoPrefix("", key)+"lock/", nil); len(entries) != 0 {
			t.Errorf("the lock is still held after the stop under exec: %v", entries)
		}
	})

	t.Run("short Nomad kill_timeout", func(t *testing.T) {
		// Acceptance 5: Nomad's kill_timeout (3s) is below repolock's
		// (10s) and the command ignores SIGINT; repolock fits its own under
		// Nomad's, so the lock is released and the run recorded before
		// Nomad's SIGKILL.
		dir := t.TempDir()
		started := filepath.Join(dir, "started")
		job := filepath.Join(dir, "short.nomad.hcl")
		must(t, os.WriteFile(job, []byte(fmt.Sprintf(`
job "short-kill" {
  type = "batch"
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "t" {
      driver       = "raw_exec"
      kill_timeout = "3s"
      identity {
        file = true
      }
      config {
        command = %q
        args    = ["run", "-config", "${NOMAD_TASK_DIR}/r.hcl", "-log-json", "hold"]
      }
      env {
        CONSUL_HTTP_ADDR       = "https://%s"
        CONSUL_CACERT          = %q
        CONSUL_CLIENT_CERT     = %q
        CONSUL_CLIENT_KEY      = %q
        CONSUL_HTTP_TOKEN_FILE = "${NOMAD_SECRETS_DIR}/consul_token"
      }
      template {
        destination = "secrets/consul_token"
        data        = "{{ with nomadVar \"nomad/jobs/short-kill\" }}{{ .consul_token }}{{ end }}"
      }
      template {
        destination = "local/r.hcl"
        data        = <<-EOT
          lock {
            ttl          = "30s"
            kill_timeout = "10s"
          }
          repository "r" {
            tool     = "exec"
            location = "nomad-short"
            lock_key = "nomad-short"
          }
          job "hold" {
            repository = "r"
            mode       = "exclusive"
            command    = ["sh", "-c", "trap '' INT; echo 1 > %s; while :; do sleep 0.1; done"]
          }
        EOT
      }
    }
  }
}
`, binary, s.srv.Addr, s.srv.PKI.CA, s.srv.PKI.ClientCert, s.srv.PKI.ClientKey, started)), 0o644))
		s.nomad.MustCLI(t, "job", "run", "-detach", job)
		alloc := s.nomad.WaitRunning(t, "short-kill", time.Minute)
		waitFile(t, started, 30*time.Second)
		stopped := time.Now()
		s.nomad.MustCLI(t, "job", "stop", "-detach", "short-kill")
		s.nomad.WaitAllocs(t, "short-kill", 1, time.Minute)
		log := s.logs(t, alloc.ID, "t", true)
		if !strings.Contains(log, "Nomad's kill_timeout is shorter than repolock's") || !strings.Contains(log, `"kill_timeout":"2s"`) {
			t.Errorf("the log does not say which kill_timeout repolock used:\n%s", log)
		}
		released := logTime(t, log, "lock released")
		if d := released.Sub(stopped); d > 3*time.Second {
			t.Errorf("lock released %s after the stop, after Nomad's kill_timeout of 3s:\n%s", d, log)
		}
		l := lastRun(t, s.c, "nomad-short")
		if l.Exit == 0 || len(l.Notes) == 0 || !strings.Contains(l.Notes[0], "Nomad's kill_timeout of 3s") {
			t.Errorf("last run %+v, want a non-zero end and the kill_timeout choice in its notes", l)
		}
		if entries, _, _ := s.c.KV().List(consullock.RepoPrefix("", "nomad-short")+"lock/", nil); len(entries) != 0 {
			t.Errorf("the lock is still held: %v", entries)
		}
		t.Logf("short kill_timeout: lock released %s after the stop (Nomad's kill_timeout 3s)", released.Sub(stopped).Round(time.Millisecond))
	})

	t.Run("killed prune healed by the next backup", func(t *testing.T) {
		// Acceptance 3: a prune allocation is killed hard mid-run (SIGKILL
		// of every process of the task, as an OOM kill would); the next
		// forced backup completes with exit 0 and no operator action, and
		// says which native lock it cleared. restic forget runs its prune
		// only when it removed a snapshot (cmd_forget.go), and a forget
		// alone holds its lock for a moment: two more snapshots and
		// --keep-last 1 make it prune, and rate-limited reads make the
		// prune slow enough to be caught holding its restic lock.
		restic(t, s.repo, s.pwfile, nil, "backup", s.data)
		restic(t, s.repo, s.pwfile, nil, "backup", s.data)
		// A short ttl: the killed prune's session then expires in seconds.
		s.run(t, jobFile("restic-prune"), "-var", `keep=["--keep-last","1","--limit-download","1"]`, "-var", "lock_ttl=6s", "-var", "lock_kill_timeout=2s")
		s.run(t, jobFile("restic-backup"), "-var", `paths=["`+s.data+`"]`)
		s.nomad.MustCLI(t, "job", "periodic", "force", "-detach", "restic-prune")
		alloc := s.nomad.WaitRunning(t, "restic-prune", time.Minute)
		var lockIDs []string
		for deadline := time.Now().Add(30 * time.Second); len(lockIDs) == 0; time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the prune took no restic lock within 30s:\n%s%s", s.logs(t, alloc.ID, "prune", true), s.logs(t, alloc.ID, "prune", false))
			}
			lockIDs = resticLocks(s.repo)
		}
		killed := 0
		procs, _ := filepath.Glob("/proc/[0-9]*/environ")
		for _, p := range procs {
			if env, err := os.ReadFile(p); err == nil && bytes.Contains(env, []byte("NOMAD_ALLOC_ID="+alloc.ID)) {
				var pid int
				if _, err := fmt.Sscanf(p, "/proc/%d/environ", &pid); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
			}
		}
		if killed < 2 {
			t.Fatalf("killed %d processes of the prune allocation, want repolock, its guard and restic", killed)
		}
		s.nomad.WaitAllocs(t, alloc.JobID, 1, time.Minute)
		if got := resticLocks(s.repo); len(got) != 1 || got[0] != lockIDs[0] {
			t.Fatalf("after the kill the repository has restic locks %q, want the prune's %q", got, lockIDs)
		}

		old := s.allocIDs(t, "restic-backup")
		s.nomad.MustCLI(t, "job", "periodic", "force", "-detach", "restic-backup")
		backup := s.waitNewAlloc(t, "restic-backup", old, true)
		log := s.logs(t, backup.ID, "backup", true)
		if backup.ClientStatus != "complete" {
			t.Fatalf("the backup after the killed prune ended %s, want complete:\n%s", backup.ClientStatus, log)
		}
		if !strings.Contains(log, "removed native lock") || !strings.Contains(log, lockIDs[0]) {
			t.Errorf("the backup's log does not name the cleared lock %s:\n%s", lockIDs[0], log)
		}
		if got := resticLocks(s.repo); len(got) != 0 {
			t.Errorf("restic locks left: %q", got)
		}
		t.Logf("the backup healed the killed prune's lock %.8s and completed", lockIDs[0])
	})
}

// allocIDs is the set of job's allocations so far.
func (s *nomadSuite) allocIDs(t *testing.T, job string) map[string]bool {
	ids := map[string]bool{}
	for _, a := range s.nomad.Allocs(t, job) {
		ids[a.ID] = true
	}
	return ids
}

// waitNewAlloc waits for an allocation of job not in old: running, or
// terminal when done is set.
func (s *nomadSuite) waitNewAlloc(t *testing.T, job string, old map[string]bool, done bool) testcluster.Alloc {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, a := range s.nomad.Allocs(t, job) {
			if old[a.ID] {
				continue
			}
			switch a.ClientStatus {
			case "complete", "failed", "lost":
				return a
			case "running":
				if !done {
					return a
				}
			}
		}
	}
	t.Fatalf("job %s: no new allocation after %d:\n%s", job, len(old), s.nomad.Logs())
	return testcluster.Alloc{}
}

// writeTarGz writes a tar.gz holding the file at path as name (mode
// 0755), as an artifact server would serve a release.
func writeTarGz(t *testing.T, w io.Writer, name, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err == nil {
		_, _ = tw.Write(b)
	}
	_ = tw.Close()
	_ = zw.Close()
}

// Issue 8: the systemd example passes systemd-analyze verify (where the
// tool exists: it is systemd's, absent from hosts without systemd).
func TestSystemdUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the units are not checked on this host")
	}
	dir := t.TempDir()
	for _, f := range []string{"repolock-backup.service", "repolock-backup.timer"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "jobspecs", "systemd", f))
		must(t, err)
		// The unit names the installed binary; verify checks it exists.
		must(t, os.WriteFile(filepath.Join(dir, f), bytes.ReplaceAll(b, []byte("/usr/local/bin/repolock"), []byte(binary)), 0o644))
	}
	out, err := exec.Command(sa, "verify", filepath.Join(dir, "repolock-backup.service"), filepath.Join(dir, "repolock-backup.timer")).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// Issue 22: every job file takes the lock's datacenter as a variable,
// empty by default, and renders it into repolock's config: `nomad job run
// -output` interpolates the variables as Nomad would, consul-template
// renders the config's template as Nomad's client would (it reads only
// the task's environment), and the config loads with that datacenter.
func TestJobspecsRenderLockDatacenter(t *testing.T) {
	nomad, ct := testcluster.Binary(t, "nomad"), testcluster.Binary(t, "consul-template")
	for _, job := range []string{"restic-backup", "restic-check", "restic-prune", "borg-create"} {
		for _, dc := range []string{"", "dc1"} {
			args := []string{"job", "run", "-output", "-var", "repository=/srv/backup/" + job}
			if job == "restic-backup" || job == "borg-create" {
				args = append(args, "-var", `paths=["/data"]`)
			}
			if dc != "" {
				args = append(args, "-var", "lock_datacenter="+dc)
			}
			cmd := exec.Command(nomad, append(args, jobFile(job))...)
			cmd.Env = append(os.Environ(), "NOMAD_ADDR=http://127.0.0.1:1") // -output asks no agent
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: nomad job run -output: %v\n%s", job, err, &stderr)
			}
			var doc struct {
				Job struct {
					TaskGroups []struct {
						Tasks []struct {
							Templates []struct{ DestPath, EmbeddedTmpl string }
						}
					}
				}
			}
			must(t, json.Unmarshal(out, &doc))
			var rendered string
			for _, tg := range doc.Job.TaskGroups {
				for _, task := range tg.Tasks {
					for _, tpl := range task.Templates {
						if tpl.DestPath == "local/repolock.hcl" {
							rendered = renderOffline(t, ct, tpl.EmbeddedTmpl)
						}
					}
				}
			}
			if rendered == "" {
				t.Fatalf("%s: no template renders local/repolock.hcl", job)
			}
			cfg, _, diags := plan.Load(writeConfig(t, rendered))
			if diags.HasErrors() {
				t.Fatalf("%s with lock_datacenter %q: the rendered config does not load: %v\n%s", job, dc, diags, rendered)
			}
			if cfg.Consul.Datacenter != dc {
				t.Errorf("%s with lock_datacenter %q: the config's datacenter is %q", job, dc, cfg.Consul.Datacenter)
			}
		}
	}
}

// renderOffline renders a job file's template with consul-template, in the
// environment Nomad gives a task (NOMAD_META_args for the ad-hoc job);
// templates that read only the environment need no Consul.
func renderOffline(t *testing.T, ct, tmpl string) string {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.tmpl"), filepath.Join(dir, "out.hcl")
	must(t, os.WriteFile(in, []byte(tmpl), 0o644))
	cmd := exec.Command(ct, "-once", "-template", in+":"+out)
	cmd.Env = append(testcluster.CleanEnv(), "NOMAD_TASK_DIR=/alloc/local", "NOMAD_SECRETS_DIR=/alloc/secrets",
		"NOMAD_META_args=check --read-data", "CONSUL_HTTP_ADDR=127.0.0.1:1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("consul-template: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	must(t, err)
	return string(b)
}
