package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/testcluster"
)

// beatScript heartbeats into $HB, $BEATS times: the command of the limit
// tests' jobs, and (named restic) their stand-in for restic.
const beatScript = `#!/bin/sh
i=0; while [ $i -lt "${BEATS:-10}" ]; do date +%s%N >> "$HB"; i=$((i+1)); sleep 0.02; done
`

// limitRun is a job run of the limit tests, judged by its heartbeats.
type limitRun struct {
	p           *proc
	job, repo   string
	exclusive   bool
	beats       string
	first, last int64
}

func (r *limitRun) finish(t *testing.T) {
	t.Helper()
	if code := r.p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("job %s exited %d, want 0:\n%s", r.job, code, r.p.stderr)
	}
	hb := heartbeats(t, r.beats)
	r.first, r.last = hb[0], hb[len(hb)-1]
}

// most is the largest number of runs that held at one moment.
func most(runs []*limitRun) int {
	var s []*slotRun
	for _, r := range runs {
		s = append(s, &slotRun{first: r.first, last: r.last})
	}
	return mostAt(s, 0, 1<<62)
}

// Issue 17, acceptance 4–6: limit blocks, a cap on jobs across
// repositories and hosts, held with the repository's lock as one lease.
func TestLimits(t *testing.T) {
	srv := testcluster.StartServer(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "beat.sh")
	must(t, os.WriteFile(script, []byte(beatScript), 0o755))
	bin := filepath.Join(dir, "bin")
	must(t, os.MkdirAll(bin, 0o755))
	must(t, os.WriteFile(filepath.Join(bin, "restic"), []byte(beatScript), 0o755))
	env := append(srv.Env(""), "PATH="+bin+":"+os.Getenv("PATH"))

	t.Run("validate refuses bad limits", func(t *testing.T) {
		cfg := writeConfig(t, `limit "nas" {
  slots = 2
}
limit "nas" {
  slots = 3
}
limit "zero" {
  slots = 0
}
repository "photos" {
  tool     = "exec"
  location = "/srv/photos"
  limits   = ["nas", "nope"]
}
job "nightly" {
  repository = "photos"
  mode       = "shared"
  command    = ["true"]
  limits     = ["nas", "nas"]
}
`)
		code, out := runRepolock(t, env, "validate", "-config", cfg)
		for _, want := range []string{cfg + `:4:7: Duplicate limit "nas"`, cfg + ":8:11: Invalid slots", cfg + ":13:14: Unknown limit", cfg + ":19:16: Duplicate limit"} {
			if !strings.Contains(out, want) {
				t.Errorf("validate does not say %q", want)
			}
		}
		if code != 78 || t.Failed() {
			t.Errorf("validate: exit %d, want 78:\n%s", code, out)
		}
	})
	t.Run("a limit of 2 over 4 repositories", func(t *testing.T) {
		// 12 jobs over 4 repositories, each with an exclusive job and two
		// shared ones: at most 2 run at once across all four, and each
		// repository's exclusive job runs alone there.
		var cfg strings.Builder
		cfg.WriteString("lock {\n  ttl = \"4s\"\n  kill_timeout = \"1s\"\n  wait = \"2m\"\n}\nlimit \"nas\" {\n  slots = 2\n}\n")
		var runs []*limitRun
		for r := range 4 {
			fmt.Fprintf(&cfg, "repository \"r%d\" {\n  tool = \"exec\"\n  location = %q\n  limits = [\"nas\"]\n}\n", r, filepath.Join(dir, fmt.Sprint("repo-", r)))
			for _, j := range []string{"x", "s1", "s2"} {
				mode := "shared"
				if j == "x" {
					mode = "exclusive"
				}
				lr := &limitRun{job: fmt.Sprintf("r%d-%s", r, j), repo: fmt.Sprint("r", r), exclusive: j == "x"}
				lr.beats = filepath.Join(dir, lr.job)
				fmt.Fprintf(&cfg, "job %q {\n  repository = %q\n  mode = %q\n  command = [\"sh\", %q]\n  env = { HB = %q, BEATS = \"12\" }\n}\n",
					lr.job, lr.repo, mode, script, lr.beats)
				runs = append(runs, lr)
			}
		}
		path := writeConfig(t, cfg.String())
		if code, out := runRepolock(t, env, "validate", "-config", path); code != 0 || !strings.Contains(out, "limits nas (2 slots, key nas)") {
			t.Fatalf("validate: exit %d, want the limit named for each job:\n%s", code, out)
		}
		for _, r := range runs {
			r.p = start(t, env, "run", "-config", path, r.job)
		}
		for _, r := range runs {
			r.finish(t)
		}
		n := most(runs)
		t.Logf("12 jobs over 4 repositories under limit nas (2 slots): at most %d ran at once", n)
		if n != 2 {
			t.Errorf("at most %d jobs ran at once, want 2 (the limit's slots)", n)
		}
		for _, x := range runs {
			for _, o := range runs {
				if x.exclusive && o != x && o.repo == x.repo && o.first <= x.last && x.first <= o.last {
					t.Errorf("exclusive job %s ran beside %s of its repository", x.job, o.job)
				}
			}
		}
		if code, out := runRepolock(t, env, "status", "-config", path); code != 0 || !strings.Contains(out, "nas") || !strings.Contains(out, "0 of 2 used") {
			t.Errorf("status: exit %d, want limit nas with 0 of 2 slots used:\n%s", code, out)
		}
	})

	t.Run("losing a slot stops the job", func(t *testing.T) {
		// One lease: the repository's lock and the limit's slot. A destroyed
		// slot session (as a break would) stops the command: 76.
		beats := filepath.Join(dir, "hb-lease")
		cfg := writeConfig(t, fmt.Sprintf(`lock {
  ttl = "4s"
  kill_timeout = "1s"
}
limit "lease" {
  slots = 1
}
repository "r" {
  tool     = "exec"
  location = %q
  limits   = ["lease"]
}
job "long" {
  repository = "r"
  mode       = "exclusive"
  command    = ["sh", %q]
  env        = { HB = %q, BEATS = "1000" }
}
`, filepath.Join(dir, "lease"), script, beats))
		p := start(t, env, "run", "-config", cfg, "long")
		waitFile(t, beats, 10*time.Second)
		c := srv.Client(t)
		pairs, _, err := c.KV().List(consullock.LimitPrefix("", "lease")+"lock/", nil)
		must(t, err)
		if len(pairs) != 1 || pairs[0].Session == "" {
			t.Fatalf("limit lease has entries %v, want the job's slot", pairs)
		}
		_, err = c.Session().Destroy(pairs[0].Session, nil)
		must(t, err)
		if code := p.wait(t, 10*time.Second); code != 76 || !strings.Contains(p.stderr.String(), "lock lost") {
			t.Errorf("the job whose slot was destroyed exited %d, want 76 naming the loss:\n%s", code, p.stderr)
		}
	})
	t.Run("per host", func(t *testing.T) {
		// One slot per host: two jobs of different repositories on one host
		// never overlap; on two hosts (a UTS namespace) they run at once.
		cfg := writeConfig(t, fmt.Sprintf(`lock {
  ttl = "4s"
  kill_timeout = "1s"
  wait = "1m"
}
limit "host" {
  slots    = 1
  per_host = true
}
repository "p" {
  tool     = "exec"
  location = %q
}
repository "q" {
  tool     = "exec"
  location = %q
}
job "jp" {
  repository = "p"
  mode       = "exclusive"
  limits     = ["host"]
  command    = ["sh", %q]
  env        = { HB = %q, BEATS = "25" }
}
job "jq" {
  repository = "q"
  mode       = "exclusive"
  limits     = ["host"]
  command    = ["sh", %q]
  env        = { HB = %q, BEATS = "25" }
}
`, filepath.Join(dir, "p"), filepath.Join(dir, "q"), script, filepath.Join(dir, "hb-jp"), script, filepath.Join(dir, "hb-jq")))
		both := func(otherHost bool) int {
			for _, f := range []string{"hb-jp", "hb-jq"} {
				_ = os.Remove(filepath.Join(dir, f))
			}
			jp := &limitRun{job: "jp", beats: filepath.Join(dir, "hb-jp"), p: start(t, env, "run", "-config", cfg, "jp")}
			jq := &limitRun{job: "jq", beats: filepath.Join(dir, "hb-jq")}
			if otherHost {
				// A UTS namespace of its own, with another hostname.
				unshare := []string{"-u"}
				if os.Geteuid() != 0 {
					unshare = []string{"-r", "-u"}
				}
				cmd := exec.Command("unshare", append(unshare, "sh", "-c", `hostname "$0" && exec "$@"`, "other-host", binary, "run", "-config", cfg, "jq")...)
				jq.p = startProc(t, cmd, env)
			} else {
				jq.p = start(t, env, "run", "-config", cfg, "jq")
			}
			jp.finish(t)
			jq.finish(t)
			return most([]*limitRun{jp, jq})
		}
		if n := both(false); n != 1 {
			t.Errorf("from one host, %d jobs of the per-host limit ran at once, want 1", n)
		}
		if n := both(true); n != 2 {
			t.Errorf("from two hosts, %d jobs of the per-host limit ran at once, want 2 (one each)", n)
		}
	})

	t.Run("no deadlock", func(t *testing.T) {
		// 20 jobs mixing {repo A, limit L}, {repo B, limit L}, {copy A→B}
		// and {copy B→A}: every lock and slot is taken in one global
		// order, so all complete.
		pw := filepath.Join(dir, "pw")
		must(t, os.WriteFile(pw, []byte("secret\n"), 0o600))
		a, b := filepath.Join(dir, "restic-a"), filepath.Join(dir, "restic-b")
		cfg := writeConfig(t, fmt.Sprintf(`lock {
  ttl = "4s"
  kill_timeout = "1s"
  wait = "2m"
}
limit "L" {
  slots = 1
}
repository "a" {
  tool          = "restic"
  location      = %[1]q
  password_file = %[3]q
}
repository "b" {
  tool          = "restic"
  location      = %[2]q
  password_file = %[3]q
}
job "a-l" {
  repository = "a"
  limits     = ["L"]
  command    = ["restic", "backup", "/etc/hostname"]
  env        = { HB = %[4]q, BEATS = "3" }
}
job "b-l" {
  repository = "b"
  limits     = ["L"]
  command    = ["restic", "backup", "/etc/hostname"]
  env        = { HB = %[4]q, BEATS = "3" }
}
job "a-to-b" {
  repository = "b"
  command    = ["restic", "copy", "--from-repo", %[1]q]
  env        = { HB = %[4]q, BEATS = "3" }
}
job "b-to-a" {
  repository = "a"
  limits     = ["L"]
  command    = ["restic", "copy", "--from-repo", %[2]q]
  env        = { HB = %[4]q, BEATS = "3" }
}
`, a, b, pw, filepath.Join(dir, "hb-mixed")))
		var ps []*proc
		for i := range 20 {
			ps = append(ps, start(t, env, "run", "-config", cfg, []string{"a-l", "b-l", "a-to-b", "b-to-a"}[i%4]))
		}
		began := time.Now()
		for _, p := range ps {
			if code := p.wait(t, 2*time.Minute); code != 0 {
				t.Fatalf("%v exited %d, want 0:\n%s", p.cmd.Args[1:], code, p.stderr)
			}
		}
		t.Logf("20 mixed jobs completed in %s", time.Since(began).Round(time.Millisecond))
	})
}
