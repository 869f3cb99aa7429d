package borg

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/repolock/repolock/plugin"
)

func TestParseLock(t *testing.T) {
	p := &Plugin{}
	l, err := p.ParseLock("nas.example.org@20015998343868.4711-0", nil)
	if err != nil || l != (plugin.NativeLock{ID: "nas.example.org@20015998343868.4711-0", Host: "nas.example.org@20015998343868", PID: 4711, Exclusive: true}) {
		t.Errorf("exclusive holder: %+v, %v", l, err)
	}
	for _, bad := range []string{"", "nopid", "host.x-0", "host.-1-0", ".12-0"} {
		if _, err := p.ParseLock(bad, nil); err == nil {
			t.Errorf("ParseLock(%q) accepted", bad)
		}
	}
	l, err = p.ParseLock("lock.roster", []byte(`{"shared": [["b@2", 9, 0]], "exclusive": [["a@1", 8, 0]]}`))
	if err != nil || l != (plugin.NativeLock{ID: "lock.roster", Host: "a@1", PID: 8, Exclusive: true}) {
		t.Errorf("roster: %+v, %v", l, err)
	}
	l, err = p.ParseLock("lock.roster", []byte(`{"shared": [["b@2", 9, 0]], "exclusive": []}`))
	if err != nil || l != (plugin.NativeLock{ID: "lock.roster", Host: "b@2", PID: 9}) {
		t.Errorf("shared roster: %+v, %v", l, err)
	}
	if _, err := p.ParseLock("lock.roster", []byte("{")); err == nil {
		t.Error("a cut roster was accepted")
	}
}

// The listing script against the folders borg leaves, with sh.
func TestListLocksScript(t *testing.T) {
	run := func(repo string) (string, error) {
		argv := (&Plugin{}).ListLocks()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{"BORG_REPO=" + repo, "PATH=" + os.Getenv("PATH")}
		out, err := cmd.Output()
		return string(out), err
	}
	repo := t.TempDir()
	if out, err := run(repo); err == nil || out != "" {
		t.Errorf("unlocked repository: %q, %v; want no listing (exit 1): a busy exit came from the cache lock", out, err)
	}
	if err := os.WriteFile(filepath.Join(repo, "lock.roster"), []byte(`{"exclusive": [], "shared": [["h@1", 41, 0]]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(repo); err != nil || out != "lock.roster\n" {
		t.Errorf("shared holders only: %q, %v", out, err)
	}
	if err := os.Mkdir(filepath.Join(repo, "lock.exclusive"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "lock.exclusive", "h@1.42-0"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "lock.roster"), []byte(`{"exclusive": [["h@1", 42, 0]], "shared": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(repo + "/"); err != nil || !slices.Equal(strings.Fields(out), []string{"h@1.42-0"}) {
		t.Errorf("locked repository: %q, %v", out, err)
	}
	if _, err := run("ssh://backup@nas/./repo"); err == nil {
		t.Error("a remote repository was listed")
	}
}
