package plugin_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/plugin"
)

// fake is a plugin whose identity is its location, registered once for the
// registry and LockKey tests.
type fake struct{ name string }

func (f fake) Name() string { return f.name }
func (fake) Identity(r plugin.Repository) (string, error) {
	if r.Location == "" {
		return "", errors.New("fake: empty location")
	}
	return r.Location, nil
}
func (fake) Env(plugin.Repository) []string            { return nil }
func (fake) OwnsEnv(string) bool                       { return false }
func (fake) Mode([]string) (consullock.Mode, error)    { return consullock.Shared, nil }
func (fake) Targets([]string) ([]plugin.Target, error) { return nil, plugin.ErrOpaque }
func (fake) Classify(int) plugin.Class                 { return plugin.Class{} }
func (fake) UnlockCommand(string) []string             { return nil }

func init() {
	plugin.Register(fake{"fake-b"})
	plugin.Register(fake{"fake-a"})
}

func TestRegistry(t *testing.T) {
	got := plugin.Tools()
	if !slices.IsSorted(got) || !slices.Contains(got, "fake-a") || !slices.Contains(got, "fake-b") {
		t.Fatalf("Tools() = %v, want sorted and holding fake-a, fake-b", got)
	}
	if p, err := plugin.Get("fake-a"); err != nil || p.Name() != "fake-a" {
		t.Fatalf("Get(fake-a) = %v, %v", p, err)
	}
	_, err := plugin.Get("resitc")
	if err == nil || !strings.Contains(err.Error(), `"resitc"`) || !strings.Contains(err.Error(), "fake-a, fake-b") {
		t.Fatalf("Get(unknown) error = %v, want it to name the tool and the known tools", err)
	}
}

func TestRegisterPanics(t *testing.T) {
	for name, p := range map[string]plugin.Plugin{"duplicate": fake{"fake-a"}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			plugin.Register(p)
		})
	}
}

func TestSignalClass(t *testing.T) {
	for _, tc := range []struct {
		code int
		want string
		ok   bool
	}{
		{0, "", false},
		{1, "", false},
		{128, "", false},
		{129, "killed by signal 1", true},
		{130, plugin.NameInterrupted, true},
		{137, "killed by signal 9", true},
		{143, "killed by signal 15", true},
		{192, "killed by signal 64", true},
		{193, "", false},
		{255, "", false},
		{-1, "", false},
	} {
		c, ok := plugin.SignalClass(tc.code)
		if ok != tc.ok || c.Name != tc.want || c.Success {
			t.Errorf("SignalClass(%d) = %+v, %v; want %q, %v, never success", tc.code, c, ok, tc.want, tc.ok)
		}
	}
}

var derivedKey = regexp.MustCompile(`^([a-z0-9._-]+-)?[0-9a-f]{10}$`)

func TestExplicitLockKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"photos", true},
		{"Photos.NAS_2-b", true},
		{"a", true},
		{"...x", true},
		{".", false},
		{"..", false},
		{"photos/nightly", false},
		{"photos nightly", false},
		{"a/b", false},
		{"a b", false},
		{"../x", false},
		{"x\n", false},
		{"photös", false},
		{"a:b", false},
		{strings.Repeat("k", consullock.MaxKeyLen), true},
		{strings.Repeat("k", consullock.MaxKeyLen+1), false},
	} {
		got, err := plugin.LockKey(plugin.Repository{Tool: "fake-a", Location: "x", LockKey: tc.key})
		if (err == nil) != tc.ok || (tc.ok && got != tc.key) {
			t.Errorf("LockKey(lock_key %q) = %q, %v; want ok=%v and the key unchanged", tc.key, got, err, tc.ok)
		}
		// A refused key is refused before the tool is looked up: the error
		// is about the key, not about an unknown tool.
		if !tc.ok {
			_, err := plugin.LockKey(plugin.Repository{Tool: "no-such-tool", LockKey: tc.key})
			if err == nil || !strings.Contains(err.Error(), "lock key") {
				t.Errorf("LockKey(lock_key %q, unknown tool) error %v, want one about the lock key", tc.key, err)
			}
		}
	}

	// An empty LockKey is not an explicit key: it means "derive one".
	got, err := plugin.LockKey(plugin.Repository{Tool: "fake-a", Location: "x", LockKey: ""})
	if err != nil || got != plugin.KeyFromIdentity("x") {
		t.Errorf("LockKey(lock_key \"\") = %q, %v; want the key derived from the identity", got, err)
	}
	if err := consullock.CheckKey(plugin.KeyFromIdentity("x")); err != nil {
		t.Errorf("derived key refused by consullock.CheckKey: %v", err)
	}
}

func TestRunsTool(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"restic"}, true},
		{[]string{"restic", "backup", "/d"}, true},
		{[]string{"/usr/local/bin/restic", "backup"}, true},
		{[]string{"./restic", "prune"}, true},
		{nil, false},
		{[]string{}, false},
		{[]string{""}, false},
		{[]string{"restic-0.18", "backup"}, false},
		{[]string{"sh", "-c", "restic backup /d"}, false},
		{[]string{"nice", "restic", "backup"}, false},
		{[]string{"/opt/restic/bin"}, false},
		{[]string{"Restic"}, false},
	} {
		err := plugin.RunsTool("restic", tc.args)
		if tc.ok {
			if err != nil {
				t.Errorf("RunsTool(restic, %q) = %v, want nil", tc.args, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, plugin.ErrModeNotInferred) {
			t.Errorf("RunsTool(restic, %q) = %v, want an error wrapping ErrModeNotInferred", tc.args, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "restic: ") {
			t.Errorf("RunsTool(restic, %q) error %q does not name the tool", tc.args, err)
		}
	}
	// The error names the program that does run.
	if err := plugin.RunsTool("borg", []string{"/bin/sh", "-c", "borg list"}); err == nil || !strings.Contains(err.Error(), `"sh"`) {
		t.Errorf("RunsTool(borg, sh …) error %v, want it to name \"sh\"", err)
	}
}

// failing is a plugin whose Identity always fails, for IdentityOf.
type failing struct{ fake }

var errNoIdentity = errors.New("no identity here")

func (failing) Identity(plugin.Repository) (string, error) { return "", errNoIdentity }

func TestIdentityOf(t *testing.T) {
	id, err := plugin.IdentityOf(fake{"fake-a"}, plugin.Repository{Name: "photos", Location: "restic+sftp://nas/srv/r"})
	if err != nil || id != "restic+sftp://nas/srv/r" {
		t.Fatalf("IdentityOf = %q, %v; want the plugin's identity", id, err)
	}

	r := plugin.Repository{Name: "photos", Location: "rest:https://u:s3cr3t@host/p"}
	id, err = plugin.IdentityOf(failing{fake{"tool-x"}}, r)
	if err == nil || id != "" {
		t.Fatalf("IdentityOf = %q, %v; want an error", id, err)
	}
	if !errors.Is(err, errNoIdentity) {
		t.Errorf("IdentityOf error %v does not wrap the plugin's error", err)
	}
	msg := err.Error()
	for _, want := range []string{"tool-x: ", `repository "photos"`, plugin.Redact(r.Location), errNoIdentity.Error()} {
		if !strings.Contains(msg, want) {
			t.Errorf("IdentityOf error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "s3cr3t") {
		t.Errorf("IdentityOf error %q leaks the password", msg)
	}
}
func TestKeyFromIdentity(t *testing.T) {
	for _, tc := range []struct{ id, wantReadable string }{
		{"restic+sftp://nas/srv/restic/photos", "restic-sftp-nas-srv-restic-photos"},
		{"borg+ssh://h/~u/rel", "borg-ssh-h-u-rel"},
		{"restic+local://node1/Srv/Photos", "restic-local-node1-srv-photos"},
		{"exec:db_dumps.v2", "exec-db_dumps.v2"},
		{"//::", ""},
		{"---x---", "x"},
	} {
		got := plugin.KeyFromIdentity(tc.id)
		if !derivedKey.MatchString(got) {
			t.Errorf("KeyFromIdentity(%q) = %q, not a safe KV segment", tc.id, got)
		}
		if tc.wantReadable == "" {
			if len(got) != 10 {
				t.Errorf("KeyFromIdentity(%q) = %q, want the bare hash", tc.id, got)
			}
		} else if !strings.HasPrefix(got, tc.wantReadable+"-") || len(got) != len(tc.wantReadable)+11 {
			t.Errorf("KeyFromIdentity(%q) = %q, want %q + '-' + 10 hex", tc.id, got, tc.wantReadable)
		}
		if again := plugin.KeyFromIdentity(tc.id); again != got {
			t.Errorf("KeyFromIdentity(%q) not deterministic: %q then %q", tc.id, got, again)
		}
	}

	// The readable part is lossy (case, replaced characters, truncation);
	// the hash must keep such identities apart.
	for _, pair := range [][2]string{
		{"restic+local://h/srv/Photos", "restic+local://h/srv/photos"},
		{"restic+local://h/a b", "restic+local://h/a:b"},
		{"restic+s3://s3.amazonaws.com/b/" + strings.Repeat("x", 100) + "/1", "restic+s3://s3.amazonaws.com/b/" + strings.Repeat("x", 100) + "/2"},
	} {
		a, b := plugin.KeyFromIdentity(pair[0]), plugin.KeyFromIdentity(pair[1])
		if a == b {
			t.Errorf("identities %q and %q share the key %q", pair[0], pair[1], a)
		}
	}

	long := plugin.KeyFromIdentity("restic+s3://" + strings.Repeat("abc/", 60))
	if len(long) > 80+11 || !derivedKey.MatchString(long) {
		t.Errorf("long identity gives %q (%d bytes), want at most 91 safe bytes", long, len(long))
	}
}

func TestLockKey(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       plugin.Repository
		want    string // "" with wantErr
		wantErr string
	}{
		{"explicit key is returned unchanged", plugin.Repository{Tool: "fake-a", Location: "x", LockKey: "Photos-NAS"}, "Photos-NAS", ""},
		{"explicit key needs no tool or location", plugin.Repository{LockKey: "photos"}, "photos", ""},
		{"explicit key is validated", plugin.Repository{Tool: "fake-a", LockKey: "a/b"}, "", "lock key"},
		{"derived from identity", plugin.Repository{Tool: "fake-a", Location: "restic+sftp://nas/srv/r"}, plugin.KeyFromIdentity("restic+sftp://nas/srv/r"), ""},
		{"identity error surfaces", plugin.Repository{Tool: "fake-a"}, "", "empty location"},
		{"unknown tool", plugin.Repository{Tool: "nope", Location: "/x"}, "", `unknown tool "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := plugin.LockKey(tc.r)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LockKey() = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("LockKey() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseUnlockPolicy(t *testing.T) {
	for in, want := range map[string]string{"": "never", "never": "never", "stale": "stale", "all": "all"} {
		if got, err := plugin.ParseUnlockPolicy(in); err != nil || got != want {
			t.Errorf("ParseUnlockPolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, p := range []string{"Stale", "always", "none"} {
		if _, err := plugin.ParseUnlockPolicy(p); err == nil {
			t.Errorf("ParseUnlockPolicy(%q) accepted", p)
		}
	}
	if got := plugin.UnlockPolicies(); !slices.Equal(got, []string{"never", "stale", "all"}) {
		t.Errorf("UnlockPolicies() = %q", got)
	}
}

func TestSortedEnv(t *testing.T) {
	got := plugin.SortedEnv(map[string]string{"Z": "1", "A": "x=y", "M": ""})
	if want := []string{"A=x=y", "M=", "Z=1"}; !slices.Equal(got, want) {
		t.Fatalf("SortedEnv = %q, want %q", got, want)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"rest:https://user:s3cr3t@host/p/", "rest:https://user:***@host/p/"},
		{"rest:https://user@host/p/", "rest:https://user@host/p/"},
		{"rest:https://u:pa/ss@host/p", "rest:https://u:***@host/p"},
		{"rest:https://u:pa@ss@host/p", "rest:https://u:***@host/p"},
		{"sftp://u:s3cr3t@h//srv", "sftp://u:***@h//srv"},
		{"s3:key:s3cr3t@host/bucket", "s3:key:***@host/bucket"},
		{"sftp:user@host:/srv/restic", "sftp:user@host:/srv/restic"},
		{"user:s3cr3t@host:/srv/borg", "user:***@host:/srv/borg"},
		{"user@host:/srv/borg", "user@host:/srv/borg"},
		{"sftp:u@h:/srv/a@b", "sftp:u@h:***@b"}, // over-redacts rather than guess
		{"/srv/restic", "/srv/restic"},
		{"rclone::s3,secret_access_key=s3cr3t:bucket/p", "rclone::s3,***:bucket/p"},
		{"rclone:remote,pass=s3cr3t", "rclone:remote,***"},
		{"rclone:remote:path", "rclone:remote:path"},
	} {
		if got := plugin.Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
