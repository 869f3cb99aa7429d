//go:build linux

package supervise

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Resolve finds the program name would run, before anything is started or
// locked, and returns its absolute path. A name with a slash is taken
// relative to the working directory; a bare name is searched in $PATH, whose
// relative entries are skipped as os/exec does. Failure is an *ExecError:
// Code 127 when nothing is found, 126 when what is found is a directory or
// not executable.
func Resolve(name string) (string, error) {
	if name == "" {
		return "", &ExecError{Code: codeNotFound, Cmd: name, Err: errors.New("empty command")}
	}
	if strings.Contains(name, "/") {
		abs, err := filepath.Abs(name)
		if err != nil {
			return "", &ExecError{Code: codeNotFound, Cmd: name, Err: err}
		}
		if err := executable(abs); err != nil {
			return "", &ExecError{Code: execCode(err), Cmd: name, Err: err}
		}
		return abs, nil
	}
	var denied error
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		err := executable(p)
		if err == nil {
			return p, nil
		}
		// Like a shell, prefer a later executable match, and otherwise
		// report the first file that exists but cannot run.
		if denied == nil && execCode(err) == codeNotExecutable {
			denied = &fs.PathError{Op: "exec", Path: p, Err: err}
		}
	}
	if denied != nil {
		return "", &ExecError{Code: codeNotExecutable, Cmd: name, Err: denied}
	}
	return "", &ExecError{Code: codeNotFound, Cmd: name, Err: exec.ErrNotFound}
}

// executable returns nil if execve(p) can be expected to work, else an errno.
func executable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return syscall.EISDIR
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return syscall.EACCES
	}
	// AT_EACCESS checks with the effective ids, as execve does.
	return unix.Faccessat(unix.AT_FDCWD, p, unix.X_OK, unix.AT_EACCESS)
}

// execCode maps an execve-style errno to a shell exit code.
func execCode(err error) int {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
		return codeNotFound
	}
	return codeNotExecutable
}
