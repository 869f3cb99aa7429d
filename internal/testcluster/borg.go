package testcluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Borg is one borg build the tests run against.
type Borg struct {
	Version string // as `borg --version` prints it, e.g. "1.4.0"
	Path    string
}

// Borgs returns the borg builds the real-tool tests run against: the one
// named by BORG_BIN alone when it is set; else borg 1.4 from Debian's
// bookworm-backports, unpacked into .bin/borg-1.4/ by `make borg`, and
// Debian's own borg 1.2 at /usr/bin/borg. A missing one fails the test
// with what installs it.
func Borgs(t testing.TB) []Borg {
	t.Helper()
	if os.Getenv(BinVar("borg")) != "" {
		return []Borg{borgAt(t, Binary(t, "borg"))}
	}
	pinned := filepath.Join(RepoRoot(t), ".bin", "borg-1.4", "borg")
	if _, err := os.Stat(pinned); err != nil {
		t.Fatalf("borg 1.4 not found at %s: run `make borg` (unpacks borgbackup from bookworm-backports), or name your own with BORG_BIN", pinned)
	}
	if _, err := os.Stat("/usr/bin/borg"); err != nil {
		t.Fatal("Debian's borg 1.2 not found at /usr/bin/borg: run `make borg` (installs borgbackup with apt-get), or name your own with BORG_BIN")
	}
	return []Borg{borgAt(t, pinned), borgAt(t, "/usr/bin/borg")}
}

func borgAt(t testing.TB, path string) Borg {
	t.Helper()
	out, err := exec.Command(path, "--version").CombinedOutput()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 || f[0] != "borg" {
		t.Fatalf("%s --version: %v\n%s", path, err, out)
	}
	return Borg{Version: f[1], Path: path}
}

// Dir returns a directory holding this build as `borg`, for PATH.
func (b Borg) Dir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(b.Path, filepath.Join(dir, "borg")); err != nil {
		t.Fatal(err)
	}
	return dir
}
