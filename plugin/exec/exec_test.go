package exec

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/repolock/repolock/plugin"
)

func TestIdentity(t *testing.T) {
	p := &Plugin{}
	for _, tc := range []struct {
		loc    string
		shared bool
		want   string // "" for an error
	}{
		{"db-dumps", false, "exec:db-dumps"},
		{"Photos.v2_nas", false, "exec:Photos.v2_nas"},
		{"/srv/dumps/", false, "exec+local://node1/srv/dumps"},
		{"/srv/dumps", true, "exec+local:///srv/dumps"},
		{"./dumps", false, "exec+local://node1/work/dumps"},
		{"../dumps", false, "exec+local://node1/dumps"},
		{"HTTPS://user:s3cr3t@Store.example:443/bucket/x/", false, "exec+https://store.example/bucket/x"},
		{"sftp://u@nas:22//srv/x", false, "exec+sftp://nas/srv/x"},
		{"s3://minio:9000/b", false, "exec+s3://minio:9000/b"},
		{"", false, ""},
		{"user:s3cr3t@host:path", false, ""},
		{"dumps/2024", false, ""},
		{"~/dumps", false, ""},
		{"https://u:s3cr3t#@h/p", false, ""},
	} {
		got, err := plugin.IdentityOf(p, plugin.Repository{Name: "r", BaseDir: "/work", Location: tc.loc, Host: "Node1", SharedLocal: tc.shared})
		if tc.want == "" {
			if err == nil {
				t.Errorf("Identity(%q) = %q, want an error", tc.loc, got)
			} else if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("Identity(%q) error %q leaks the password", tc.loc, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Identity(%q) = %q, %v; want %q", tc.loc, got, err, tc.want)
		}
	}
}

func TestMode(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"pg_dump", "-f", "x"},
		{"restic", "backup", "/d"}, // even a known tool: exec does not guess
		{"sh", "-c", "borg list"},
	} {
		m, err := (&Plugin{}).Mode(args)
		if err == nil || !errors.Is(err, plugin.ErrModeNotInferred) || m != "" {
			t.Errorf("Mode(%q) = %q, %v; want an error wrapping ErrModeNotInferred", args, m, err)
		}
		if err != nil && !strings.Contains(err.Error(), `mode = "shared" or "exclusive"`) {
			t.Errorf("Mode(%q) error %q does not say how to set the mode", args, err)
		}
	}
}

func TestClassify(t *testing.T) {
	for code, want := range map[int]plugin.Class{
		0:   {Name: plugin.NameSuccess, Success: true},
		1:   {Name: plugin.NameError},
		3:   {Name: plugin.NameError},
		127: {Name: plugin.NameError},
		130: {Name: plugin.NameInterrupted},
		137: {Name: "killed by signal 9"},
	} {
		if got := (&Plugin{}).Classify(code); got != want {
			t.Errorf("Classify(%d) = %+v, want %+v", code, got, want)
		}
	}
}

func TestEnv(t *testing.T) {
	got := (&Plugin{}).Env(plugin.Repository{
		Location:     "db-dumps",
		PasswordFile: "/pw", // exec knows no password variable: not passed
	})
	if want := []string{"REPOLOCK_LOCATION=db-dumps"}; !slices.Equal(got, want) {
		t.Fatalf("Env = %q, want %q", got, want)
	}
	if got := (&Plugin{}).Env(plugin.Repository{LockKey: "k"}); len(got) != 0 {
		t.Fatalf("Env without location or env = %q, want none", got)
	}
}

func TestUnlockCommand(t *testing.T) {
	for _, policy := range []string{"", "never", "stale", "all"} {
		if got := (&Plugin{}).UnlockCommand(policy); got != nil {
			t.Errorf("UnlockCommand(%q) = %q, want nil", policy, got)
		}
	}
}

func TestOwnsEnv(t *testing.T) {
	for _, name := range []string{"REPOLOCK_LOCATION", "RESTIC_REPOSITORY", "BORG_REPO", "BORG_PASSPHRASE", "PGPASSWORD", ""} {
		if (&Plugin{}).OwnsEnv(name) {
			t.Errorf("OwnsEnv(%q) = true; exec owns no variable", name)
		}
	}
}

func TestTargets(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"pg_dump", "-f", "x"},
		{"restic", "-r", "/x", "backup"}, // even a known tool: exec does not look inside
		{"sh", "-c", "borg list /srv/b"},
	} {
		got, err := (&Plugin{}).Targets(args)
		if !errors.Is(err, plugin.ErrOpaque) || got != nil {
			t.Errorf("Targets(%q) = %+v, %v; want ErrOpaque", args, got, err)
		}
	}
}

// Without a BaseDir a relative local path is refused.
func TestRelativeWithoutBaseDir(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, loc := range []string{".", "..", "./dumps", "../dumps"} {
		if got, err := (&Plugin{}).Identity(plugin.Repository{Location: loc, Host: "h"}); err == nil || !strings.Contains(err.Error(), "relative") {
			t.Errorf("Identity(%q) without a BaseDir = %q, %v; want an error about a relative path", loc, got, err)
		}
	}
	for loc, want := range map[string]string{
		"./dumps": "exec+local://h/etc/repolock/dumps",
		".":       "exec+local://h/etc/repolock",
		"..":      "exec+local://h/etc",
	} {
		if got, err := (&Plugin{}).Identity(plugin.Repository{Location: loc, Host: "h", BaseDir: "/etc/repolock"}); err != nil || got != want {
			t.Errorf("Identity(%q) with BaseDir = %q, %v; want %q", loc, got, err, want)
		}
	}
	// A plain name is no path: the same on every host, no BaseDir needed.
	if got, err := (&Plugin{}).Identity(plugin.Repository{Location: "dumps"}); err != nil || got != "exec:dumps" {
		t.Errorf("Identity(dumps) without a BaseDir = %q, %v", got, err)
	}
}

func TestNoOptionalInterfaces(t *testing.T) {
	var p plugin.Plugin = &Plugin{}
	if _, ok := p.(plugin.Copier); ok {
		t.Error("exec implements plugin.Copier")
	}
	if _, ok := p.(plugin.LockLister); ok {
		t.Error("exec implements plugin.LockLister")
	}
}
