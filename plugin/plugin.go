// Package plugin defines what repolock needs to know about a backup tool:
// which cluster lock a repository maps to, the environment the tool gets, the
// lock mode a command needs, what the tool's exit code means and how its own
// stale locks are cleared.
//
// Plugins are pure logic. They never start processes and never talk to
// Consul; whatever command they return is run by the caller. The adapters
// live in plugin/restic, plugin/borg and plugin/exec; plugin/all registers
// them so that Get and LockKey can find them without this package importing
// its own sub-packages (which would be an import cycle).
package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/repolock/repolock/consullock"
)

// ErrModeNotInferred is wrapped by every Plugin.Mode error, so the caller
// can tell "say which mode" apart from other failures.
var ErrModeNotInferred = errors.New(`lock mode cannot be inferred from the command; set mode = "shared" or "exclusive"`)

// Repository is what a plugin sees of a configured repository.
type Repository struct {
	Name            string // config block label
	Tool            string // "restic" | "borg" | "exec"
	Location        string // tool-specific repository location as the user wrote it
	PasswordFile    string // path; never the password itself
	PasswordCommand string // a command line that prints the password
	LockKey         string // explicit override of the lock key (then Identity is not derived)
	UnlockNative    string // UnlockNever (default) | UnlockStale | UnlockAll
	SharedLocal     bool   // a local path that is shared storage (NFS…): not bound to this host
	Host            string // this host's name, used to bind local paths
	// BaseDir is what a relative local path is relative to: the directory
	// of the config file that names it (as for file()), so one config gives
	// the same lock keys from any working directory. Empty refuses
	// relative paths.
	BaseDir string
}

// Values of Repository.UnlockNative: whether repolock may clear the tool's
// own repository locks, and which.
const (
	UnlockNever = "never" // leave native locks alone (default)
	UnlockStale = "stale" // remove only locks the tool itself considers stale
	UnlockAll   = "all"   // remove every native lock; only when every writer goes through repolock
)

// UnlockPolicies lists the values of Repository.UnlockNative.
func UnlockPolicies() []string { return []string{UnlockNever, UnlockStale, UnlockAll} }

// ParseUnlockPolicy validates a Repository.UnlockNative value ("" means never).
func ParseUnlockPolicy(policy string) (string, error) {
	switch policy {
	case "":
		return UnlockNever, nil
	case UnlockNever, UnlockStale, UnlockAll:
		return policy, nil
	}
	return "", fmt.Errorf("unknown unlock_native policy %q (want %q, %q or %q)", policy, UnlockNever, UnlockStale, UnlockAll)
}

// Class is the meaning of a tool's exit code, for logs, status and metrics.
type Class struct {
	Name    string
	Success bool // the run did its job (possibly with warnings)
}

// Class names every plugin uses for the same situation, so that status and
// metrics can be compared across tools. Tool-specific classes use other,
// descriptive names.
const (
	NameSuccess        = "success"
	NameWarning        = "warning"
	NameError          = "error"
	NameInterrupted    = "interrupted"
	NameNativeLockBusy = "native lock busy"
	NameNoRepository   = "repository does not exist"
	NameWrongPassword  = "wrong password"
)

// SignalClass classifies the shell convention 128+N for a process killed by
// signal N, which is also how repolock reports such a child. 130 (SIGINT)
// is "interrupted"; ok is false for codes outside 129..192.
func SignalClass(code int) (c Class, ok bool) {
	const maxSignal = 64 // SIGRTMAX on Linux
	if code <= 128 || code > 128+maxSignal {
		return Class{}, false
	}
	if code == 130 {
		return Class{Name: NameInterrupted}, true
	}
	return Class{Name: fmt.Sprintf("killed by signal %d", code-128)}, true
}

// Plugin adapts one backup tool.
type Plugin interface {
	// Name is the tool name used in configuration ("restic").
	Name() string
	// Identity is the canonical, credential-free identity of the repository
	// at r.Location, e.g. "restic+sftp://nas/srv/restic/photos". Two
	// spellings of one repository give the same identity. Its errors never
	// quote the location, which may hold a password; IdentityOf says
	// which repository they are about.
	Identity(r Repository) (string, error)
	// Env is the tool's own KEY=VALUE entries for r, sorted: the variables
	// that name the repository and carry its secrets. They are laid over
	// everything else the child gets. Secrets travel here, never in argv.
	Env(r Repository) []string
	// OwnsEnv reports whether the tool reads name to find a repository or
	// its secrets. Only Env may set such a variable: a job's or
	// repository's env may not, and repolock's own environment does not
	// pass one on, so the tool cannot be pointed at another repository.
	OwnsEnv(name string) bool
	// Mode infers the lock mode from the full argv (args[0] is the program).
	// Errors wrap ErrModeNotInferred.
	Mode(args []string) (consullock.Mode, error)
	// Targets lists the repositories the command names in its arguments.
	// It fails for a form that must not be used (a repository file), and
	// with ErrOpaque when args do not run the tool (sh -c …), so nothing
	// can be checked.
	Targets(args []string) ([]Target, error)
	// Classify gives the meaning of the tool's exit code.
	Classify(code int) Class
	// UnlockCommand is the argv that clears the tool's own locks as policy
	// allows, or nil. It names no repository and no secret: the caller runs
	// it with Env, where the tool finds the repository.
	UnlockCommand(policy string) []string
}

// Target is a repository named in a command's arguments.
type Target struct {
	Location string // as written
	Arg      string // how the command names it, for messages: "-r /srv/x"
	// From marks a second repository the command reads from (restic copy
	// --from-repo): it must be a configured repository, locked too.
	From bool
}

// ErrOpaque is returned by Targets for a command the plugin cannot see
// into, such as a shell script.
var ErrOpaque = errors.New("the command does not run the tool directly, so the repository it uses cannot be checked")

// Copier is implemented by tools that read a second repository (restic
// copy): FromEnv is the tool's variables naming r as that source.
type Copier interface {
	FromEnv(r Repository) []string
}

// LockLister is implemented by tools that can list their own repository
// locks, so that repolock can say which ones it cleared. The commands run
// with the repository's Env, under the cluster lock, and must not take a
// native lock themselves.
type LockLister interface {
	// ListLocks prints the IDs of the repository's locks, one a line.
	ListLocks() []string
	// ShowLock prints one lock.
	ShowLock(id string) []string
	// ParseLock reads ShowLock's output.
	ParseLock(id string, out []byte) (NativeLock, error)
}

// IdentityOf is p.Identity(r), its error naming the tool, the repository
// and its location (redacted) in front of the reason.
func IdentityOf(p Plugin, r Repository) (string, error) {
	id, err := p.Identity(r)
	if err != nil {
		return "", fmt.Errorf("%s: repository %q: location %q: %w", p.Name(), r.Name, Redact(r.Location), err)
	}
	return id, nil
}

// RunsTool checks that args run the program tool; otherwise the command
// (a wrapper such as sh -c or a script) hides what it does, and the error
// wraps ErrModeNotInferred.
func RunsTool(tool string, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s: empty command: %w", tool, ErrModeNotInferred)
	}
	if filepath.Base(args[0]) != tool {
		return fmt.Errorf("%s: the command runs %q, not %s: %w", tool, filepath.Base(args[0]), tool, ErrModeNotInferred)
	}
	return nil
}

// SortedEnv renders a map as sorted KEY=VALUE entries.
func SortedEnv(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Plugin{}
)

// Register makes p available to Get under p.Name(). It panics on a nil
// plugin or a duplicate name, like database/sql.Register: both are
// programming errors found at start-up.
func Register(p Plugin) {
	if p == nil {
		panic("plugin: Register of a nil plugin")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[p.Name()]; dup {
		panic(fmt.Sprintf("plugin: Register called twice for %q", p.Name()))
	}
	registry[p.Name()] = p
}

// Get returns the plugin registered for tool.
func Get(tool string) (Plugin, error) {
	registryMu.RLock()
	p, ok := registry[tool]
	registryMu.RUnlock()
	if ok {
		return p, nil
	}
	known := Tools()
	if len(known) == 0 {
		// Nothing registered is a wiring mistake, not a typo in the config.
		return nil, fmt.Errorf("plugin: unknown tool %q: no plugins registered (import github.com/repolock/repolock/plugin/all)", tool)
	}
	return nil, fmt.Errorf("plugin: unknown tool %q (known tools: %s)", tool, strings.Join(known, ", "))
}

// Tools returns the registered tool names, sorted.
func Tools() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return slices.Sorted(maps.Keys(registry))
}

// LockKey is the Consul KV path segment of r's lock: KeyOf with the
// identity of r's plugin, derived only when r has no explicit LockKey.
func LockKey(r Repository) (string, error) {
	if r.LockKey != "" {
		return KeyOf(r, "")
	}
	p, err := Get(r.Tool)
	if err != nil {
		return "", err
	}
	id, err := IdentityOf(p, r)
	if err != nil {
		return "", err
	}
	return KeyOf(r, id)
}

// KeyOf is the lock key of r whose identity (IdentityOf) the caller has
// already derived, so that it is derived once. An explicit r.LockKey is
// validated (consullock.CheckKey) and returned unchanged, so operators can
// predict it, and identity is not used; otherwise the key is
// KeyFromIdentity(identity).
func KeyOf(r Repository, identity string) (string, error) {
	if r.LockKey == "" {
		return KeyFromIdentity(identity), nil
	}
	if err := consullock.CheckKey(r.LockKey); err != nil {
		return "", err
	}
	return r.LockKey, nil
}

// readableMax bounds the human-readable part of a derived key so that keys
// stay readable in `consul kv get -recurse` output.
const readableMax = 80

// KeyFromIdentity turns an identity into a lock key that consullock.CheckKey
// accepts: a readable part (lowercase, runs of other bytes replaced by '-',
// at most 80 bytes), '-', and the first 10 hex digits of sha256(identity).
// The hash keeps identities that differ only in case or in replaced
// characters apart, so the readable part may be lossy.
func KeyFromIdentity(identity string) string {
	sum := sha256.Sum256([]byte(identity))
	hash := hex.EncodeToString(sum[:])[:10]
	readable := consullock.Sanitize(strings.ToLower(identity))
	if len(readable) > readableMax {
		readable = readable[:readableMax]
	}
	readable = strings.Trim(readable, "-")
	if readable == "" {
		return hash
	}
	return readable + "-" + hash
}

// locationSchemes are the "scheme:" prefixes of the built-in tools'
// non-URL location forms, which Redact must not take for a user name.
var locationSchemes = map[string]bool{
	"local": true, "sftp": true, "rest": true, "s3": true, "b2": true, "gs": true,
	"azure": true, "swift": true, "rclone": true, "ssh": true, "file": true,
}

// Redact hides what may be a password in a location so it can appear in an
// error or a log line: whatever follows the first ':' of the user-info part
// (before the last '@') of URL and scheme:user:password@host forms, and the
// parameters of an rclone connection string. It errs on hiding too much:
// a password may hold characters that make the location unparseable.
func Redact(location string) string {
	if rest, ok := strings.CutPrefix(location, "rclone:"); ok {
		if i := strings.IndexByte(rest, ','); i >= 0 {
			// ":s3,secret_access_key=…:bucket": every parameter may be a secret.
			if end := strings.IndexByte(rest[i:], ':'); end >= 0 {
				return "rclone:" + rest[:i] + ",***" + rest[i+end:]
			}
			return "rclone:" + rest[:i] + ",***"
		}
		return location
	}
	start := strings.Index(location, "://")
	if start >= 0 {
		start += len("://")
	} else if scheme, _, ok := strings.Cut(location, ":"); ok && locationSchemes[scheme] {
		start = len(scheme) + 1 // "s3:key:secret@host"
	} else {
		start = 0 // "user:secret@host:path"
	}
	at := strings.LastIndexByte(location, '@')
	if at < start {
		return location
	}
	user, _, hasPass := strings.Cut(location[start:at], ":")
	if !hasPass {
		return location
	}
	return location[:start] + user + ":***" + location[at:]
}
