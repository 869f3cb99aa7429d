// Package exec is the generic plugin for any command: repolock knows nothing
// about the tool, so the job states the lock mode and the repository is
// usually named by lock_key.
package exec

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/plugin"
	"github.com/repolock/repolock/plugin/internal/location"
)

// Name is the tool name in configuration.
const Name = "exec"

// Plugin is the generic adapter.
type Plugin struct{}

// Name implements plugin.Plugin.
func (*Plugin) Name() string { return Name }

// plainName reports whether loc is a plain name: only the bytes of a lock
// key, as consullock defines them (Sanitize leaves such a name unchanged).
func plainName(loc string) bool { return loc != "" && consullock.KeyChars(loc) }

// defaultPorts are dropped from URL locations.
var defaultPorts = map[string]int{"ssh": 22, "sftp": 22, "http": 80, "https": 443}

// Identity implements plugin.Plugin. Without knowing the tool, only three
// location forms are accepted, each of which can be made credential-free:
//
//   - a URL "scheme://[user[:password]@]host[:port]/path": scheme and host
//     lowercased, user and password dropped, default ssh/http(s) ports
//     dropped, path cleaned: "exec+scheme://host/path";
//   - a path starting with "/", "./" or "../": a local path, bound to the
//     host unless SharedLocal: "exec+local://HOST/abs";
//   - a plain name of [A-Za-z0-9._-]: "exec:name", the same on every host.
//
// Anything else is refused; lock_key names such repositories.
func (*Plugin) Identity(r plugin.Repository) (string, error) {
	loc := r.Location
	switch {
	case loc == "":
		return "", errors.New("the exec tool needs lock_key or a location")
	case strings.Contains(loc, "://"):
		u, err := location.ParseURL(loc)
		if err != nil {
			return "", err
		}
		scheme := strings.ToLower(u.Scheme)
		if scheme == "" {
			return "", errors.New("URL without a scheme")
		}
		h, err := location.Host(u.Hostname())
		if err != nil {
			return "", err
		}
		pt, err := location.Port(u.Port(), defaultPorts[scheme])
		if err != nil {
			return "", err
		}
		// path.Clean keeps "//abs" vs "/rel" apart as well as it can: it
		// folds "//" to "/", which over-merges, the safe direction.
		return "exec+" + scheme + "://" + location.HostPort(h, pt) + path.Clean("/"+u.Path), nil
	case loc == "." || loc == ".." || strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "./") || strings.HasPrefix(loc, "../"):
		return location.Local(Name, loc, r.BaseDir, r.Host, r.SharedLocal)
	case plainName(loc):
		return "exec:" + loc, nil
	}
	return "", errors.New("want a URL, a path starting with / ./ or ../, or a plain name; or set lock_key")
}

// Env implements plugin.Plugin: the location as REPOLOCK_LOCATION, so a
// script learns it from the same config that locks it.
func (*Plugin) Env(r plugin.Repository) []string {
	if r.Location == "" {
		return nil
	}
	loc := r.Location
	if !strings.Contains(loc, "://") && (loc == "." || loc == ".." || strings.HasPrefix(loc, "./") || strings.HasPrefix(loc, "../")) {
		loc = location.InDir(loc, r.BaseDir) // the path the identity was derived for
	}
	return []string{"REPOLOCK_LOCATION=" + loc}
}

// OwnsEnv implements plugin.Plugin: an unknown tool's variables are unknown.
func (*Plugin) OwnsEnv(string) bool { return false }

// Targets implements plugin.Plugin: an arbitrary command cannot be seen into.
func (*Plugin) Targets([]string) ([]plugin.Target, error) { return nil, plugin.ErrOpaque }

// Mode implements plugin.Plugin: an arbitrary command says nothing about
// what it does to the repository, so the job must state the mode.
func (*Plugin) Mode(args []string) (consullock.Mode, error) {
	prog := "an empty command"
	if len(args) > 0 {
		prog = strconv.Quote(filepath.Base(args[0]))
	}
	return "", fmt.Errorf("exec: cannot tell what %s does to the repository: %w", prog, plugin.ErrModeNotInferred)
}

// Classify implements plugin.Plugin: 0 is success, 128+N is death by signal
// N (how repolock reports it), anything else an error.
func (*Plugin) Classify(code int) plugin.Class {
	if code == 0 {
		return plugin.Class{Name: plugin.NameSuccess, Success: true}
	}
	if c, ok := plugin.SignalClass(code); ok {
		return c
	}
	return plugin.Class{Name: plugin.NameError}
}

// UnlockCommand implements plugin.Plugin: an unknown tool has no known
// native lock.
func (*Plugin) UnlockCommand(string) []string { return nil }
