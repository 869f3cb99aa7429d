package all_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/repolock/repolock/plugin"
	_ "github.com/repolock/repolock/plugin/all"
)

func TestTools(t *testing.T) {
	if got, want := plugin.Tools(), []string{"borg", "exec", "restic"}; !slices.Equal(got, want) {
		t.Fatalf("Tools() = %q, want %q", got, want)
	}
	for _, tool := range plugin.Tools() {
		p, err := plugin.Get(tool)
		if err != nil || p.Name() != tool {
			t.Errorf("Get(%q) = %v, %v", tool, p, err)
		}
	}
	_, err := plugin.Get("rsync")
	if err == nil || !strings.Contains(err.Error(), "borg, exec, restic") {
		t.Fatalf("Get(rsync) error = %v, want it to list the known tools", err)
	}
}

// repo is a repository as a pair side: tool, location, and the host the
// config is loaded on.
type repo struct {
	tool, loc, host string
	shared          bool
	base            string // the config's directory
}

func (r repo) repository() plugin.Repository {
	return plugin.Repository{Name: "r", Tool: r.tool, Location: r.loc, Host: r.host, SharedLocal: r.shared, BaseDir: r.base}
}

func rs(loc string) repo { return repo{tool: "restic", loc: loc, host: "node1"} }
func bg(loc string) repo { return repo{tool: "borg", loc: loc, host: "node1"} }

// pair is one row of testdata/identity_pairs.tsv, shared with the CLI test
// in cmd/repolock that runs the same pairs through `repolock validate -json`.
type pair struct {
	name string
	a, b repo
	same bool
}

// loadPairs reads the table; {wd} in a location becomes wd.
func loadPairs(t *testing.T, wd string) []pair {
	t.Helper()
	data, err := os.ReadFile("testdata/identity_pairs.tsv")
	if err != nil {
		t.Fatal(err)
	}
	var out []pair
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(strings.ReplaceAll(line, "{wd}", wd), "\t")
		if len(f) != 10 {
			t.Fatalf("identity_pairs.tsv:%d: %d fields, want 10", i+1, len(f))
		}
		out = append(out, pair{
			name: f[9],
			a:    repo{tool: f[1], loc: f[2], host: f[3], shared: f[4] == "true", base: wd},
			b:    repo{tool: f[5], loc: f[6], host: f[7], shared: f[8] == "true", base: wd},
			same: f[0] == "true",
		})
	}
	return out
}

// TestIdentityPairs checks that two spellings of one repository share one
// lock and that different repositories do not. Both the identity and the
// derived lock key are compared.
func TestIdentityPairs(t *testing.T) {
	wd := t.TempDir()
	pairs := loadPairs(t, wd) // {wd} is the config's directory
	t.Chdir(t.TempDir())      // which, not the working directory, counts
	if len(pairs) < 30 {
		t.Fatalf("%d pairs, want at least 30", len(pairs))
	}
	for _, tc := range pairs {
		t.Run(tc.name, func(t *testing.T) {
			ida, ka := identityAndKey(t, tc.a)
			idb, kb := identityAndKey(t, tc.b)
			if (ida == idb) != tc.same {
				t.Errorf("identities %q (%s) and %q (%s): same = %v, want %v", ida, tc.a.loc, idb, tc.b.loc, ida == idb, tc.same)
			}
			if (ka == kb) != tc.same {
				t.Errorf("lock keys %q and %q: same = %v, want %v", ka, kb, ka == kb, tc.same)
			}
		})
	}
}

func identityAndKey(t *testing.T, r repo) (string, string) {
	t.Helper()
	p, err := plugin.Get(r.tool)
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.Identity(r.repository())
	if err != nil {
		t.Fatalf("Identity(%q): %v", r.loc, err)
	}
	key, err := plugin.LockKey(r.repository())
	if err != nil {
		t.Fatalf("LockKey(%q): %v", r.loc, err)
	}
	return id, key
}

// TestNoCredentialInKey: a password written into a location never reaches
// the identity, the lock key or an error message.
func TestNoCredentialInKey(t *testing.T) {
	const secret = "s3cr3tPW"
	for _, r := range []repo{
		rs("rest:https://user:" + secret + "@host/p"),
		rs("rest:http://user:" + secret + "@host:8000/p/"),
		rs("sftp://user:" + secret + "@host//srv/r"),
		rs("sftp://user:" + secret + "@host/r"),
		rs("s3:https://AKIA:" + secret + "@s3.amazonaws.com/b/p"),
		rs("s3:http://AKIA:" + secret + "@minio:9000/b/p"),
		{tool: "exec", loc: "https://u:" + secret + "@store/p", host: "node1"},
		// refused locations: the error must not quote the password either
		rs("rest:https://user:" + secret + "#@host/p"),
		rs("rest:https://user:pa/" + secret + "@host/p"),
		rs("s3:AKIA:" + secret + "@host/b"),
		rs("rclone::s3,secret_access_key=" + secret + ":b/p"),
		bg("ssh://u:" + secret + "@h/srv/borg"),
		{tool: "exec", loc: "u:" + secret + "@h:path", host: "node1"},
	} {
		p, err := plugin.Get(r.tool)
		if err != nil {
			t.Fatal(err)
		}
		id, idErr := plugin.IdentityOf(p, r.repository())
		key, keyErr := plugin.LockKey(r.repository())
		for what, s := range map[string]string{"identity": id, "lock key": key, "identity error": errString(idErr), "lock key error": errString(keyErr)} {
			if strings.Contains(strings.ToLower(s), strings.ToLower(secret)) {
				t.Errorf("%s location %q: %s %q contains the password", r.tool, r.loc, what, s)
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestExplicitLockKeyOverrides(t *testing.T) {
	// With lock_key the location is not even parsed: a location this
	// plugin cannot derive an identity from is fine.
	key, err := plugin.LockKey(plugin.Repository{Tool: "exec", Location: "anything goes", LockKey: "db-dumps"})
	if err != nil || key != "db-dumps" {
		t.Fatalf("LockKey = %q, %v; want db-dumps", key, err)
	}
	key, err = plugin.LockKey(plugin.Repository{Tool: "restic", Location: "sftp:u@nas:/srv/restic/photos"})
	if err != nil || !strings.HasPrefix(key, "restic-sftp-nas-srv-restic-photos-") {
		t.Fatalf("derived LockKey = %q, %v", key, err)
	}
}

// TestContracts checks, for every registered plugin, what the callers rely
// on across tools.
func TestContracts(t *testing.T) {
	r := plugin.Repository{Name: "r", Location: "/srv/r", PasswordFile: "/pw", PasswordCommand: "pass show r", Host: "node1", BaseDir: "/etc/repolock"}
	for _, tool := range plugin.Tools() {
		p, err := plugin.Get(tool)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(tool, func(t *testing.T) {
			// A wrapper hides the command: nothing can be checked.
			if got, err := p.Targets([]string{"sh", "-c", tool + " -r /x backup"}); !errors.Is(err, plugin.ErrOpaque) || got != nil {
				t.Errorf("Targets(sh -c …) = %+v, %v; want ErrOpaque", got, err)
			}
			// Env is sorted, credential-free in argv, and has no variable twice.
			env := p.Env(r)
			if !slices.IsSorted(env) {
				t.Errorf("Env = %q, not sorted", env)
			}
			seen := map[string]bool{}
			for _, e := range env {
				name, _, ok := strings.Cut(e, "=")
				if !ok || name == "" || seen[name] {
					t.Errorf("Env entry %q is malformed or repeated", e)
				}
				seen[name] = true
			}
			// The unlock command runs the tool itself, names no repository
			// (it gets one from Env) and carries no secret.
			for _, policy := range plugin.UnlockPolicies() {
				args := p.UnlockCommand(policy)
				if args == nil {
					continue
				}
				if policy == plugin.UnlockNever {
					t.Errorf("UnlockCommand(never) = %q, want nil", args)
				}
				if err := plugin.RunsTool(tool, args); err != nil {
					t.Errorf("UnlockCommand(%s) = %q: %v", policy, args, err)
				}
				if targets, err := p.Targets(args); err != nil || len(targets) != 0 {
					t.Errorf("UnlockCommand(%s) = %q names a repository: %+v, %v", policy, args, targets, err)
				}
				if strings.Contains(strings.Join(args, " "), "/pw") || strings.Contains(strings.Join(args, " "), "/srv/r") {
					t.Errorf("UnlockCommand(%s) = %q carries the location or a secret", policy, args)
				}
			}
			// Only restic reads a second repository; restic and borg list
			// their locks.
			_, copier := p.(plugin.Copier)
			_, lister := p.(plugin.LockLister)
			if copier != (tool == "restic") || lister != (tool != "exec") {
				t.Errorf("Copier = %v, LockLister = %v", copier, lister)
			}
		})
	}
}

// A relative location without a config directory is refused by every
// tool that takes local paths, through LockKey as well.
func TestRelativeLocationNeedsBaseDir(t *testing.T) {
	t.Chdir(t.TempDir())
	for tool, loc := range map[string]string{"restic": "repo", "borg": "repo", "exec": "./repo"} {
		r := plugin.Repository{Name: "r", Tool: tool, Location: loc, Host: "node1"}
		if key, err := plugin.LockKey(r); err == nil || !strings.Contains(err.Error(), "relative") {
			t.Errorf("%s: LockKey(%q) without a BaseDir = %q, %v; want an error about a relative path", tool, loc, key, err)
		}
		r.BaseDir = "/etc/repolock"
		if _, err := plugin.LockKey(r); err != nil {
			t.Errorf("%s: LockKey(%q) with a BaseDir: %v", tool, loc, err)
		}
	}
}
