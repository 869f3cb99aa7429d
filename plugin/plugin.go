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
	"slices"
	"strings"
	"sync"
)

// Mode is how a command holds the repository's cluster lock.
type Mode string

// Lock modes. Shared holders run beside each other; an exclusive holder runs
// alone.
const (
	Shared    Mode = "shared"
	Exclusive Mode = "exclusive"
)

// ParseMode accepts the spelling used in configuration and on the command line.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case Shared, Exclusive:
		return Mode(s), nil
	}
	return "", fmt.Errorf("plugin: unknown lock mode %q (want %q or %q)", s, Shared, Exclusive)
}

// ErrModeNotInferred is wrapped by every Plugin.Mode error, so the caller
// can tell "say which mode" apart from other failures.
var ErrModeNotInferred = errors.New(`lock mode cannot be inferred from the command; set mode = "shared" or "exclusive"`)

// Repository is what a plugin sees of a configured repository.
type Repository struct {
	Name            string            // config block label
	Tool            string            // "restic" | "borg" | "exec"
	Location        string            // tool-specific repository location as the user wrote it
	PasswordFile    string            // path; never the password itself
	PasswordCommand string            // a command line that prints the password
	LockKey         string            // explicit override of the lock key (then Identity is not derived)
	UnlockNative    string            // UnlockNever (default) | UnlockStale | UnlockAll
	SharedLocal     bool              // a local path that is shared storage (NFS…): not bound to this host
	Host            string            // this host's name, used to bind local paths
	Env             map[string]string // extra environment for the child (already resolved values)
}

// Values of Repository.UnlockNative.
const (
	UnlockNever = "never"
	UnlockStale = "stale"
	UnlockAll   = "all"
)

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
	// spellings of one repository give the same identity.
	Identity(r Repository) (string, error)
	// Env is the KEY=VALUE entries the child gets on top of the inherited
	// environment, sorted. Secrets travel here, never in argv.
	Env(r Repository) []string
	// Mode infers the lock mode from the full argv (args[0] is the program).
	// Errors wrap ErrModeNotInferred.
	Mode(args []string) (Mode, error)
	// Classify gives the meaning of the tool's exit code.
	Classify(code int) Class
	// UnlockCommand is the argv that clears the tool's own locks as policy
	// allows, or nil. It names no repository and no secret: the caller runs
	// it with Env(r), where the tool finds the repository.
	UnlockCommand(r Repository, policy string) []string
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

// LockKey is the Consul KV path segment of r's lock. An explicit r.LockKey
// is validated and returned unchanged, so operators can predict it. Otherwise
// the key is derived from the plugin's Identity with KeyFromIdentity.
func LockKey(r Repository) (string, error) {
	if r.LockKey != "" {
		if err := CheckLockKey(r.LockKey); err != nil {
			return "", err
		}
		return r.LockKey, nil
	}
	p, err := Get(r.Tool)
	if err != nil {
		return "", err
	}
	id, err := p.Identity(r)
	if err != nil {
		return "", err
	}
	return KeyFromIdentity(id), nil
}

// MaxLockKeyLen bounds an explicit lock key; a derived key is at most
// readableMax+11 bytes.
const MaxLockKeyLen = 128

// CheckLockKey validates an explicit lock key: one KV path segment of
// [A-Za-z0-9._-]. "." and ".." are refused because HTTP clients and proxies
// may resolve them as path steps in /v1/kv/… URLs.
func CheckLockKey(k string) error {
	switch {
	case k == "":
		return errors.New("plugin: lock key is empty")
	case k == "." || k == "..":
		return fmt.Errorf("plugin: lock key %q is a path step, not a name", k)
	case len(k) > MaxLockKeyLen:
		return fmt.Errorf("plugin: lock key is %d bytes long, more than %d", len(k), MaxLockKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if !keyByte(k[i]) && !(k[i] >= 'A' && k[i] <= 'Z') {
			return fmt.Errorf("plugin: lock key %q has %q at byte %d; use only A-Z a-z 0-9 . _ -", k, k[i], i)
		}
	}
	return nil
}

// readableMax bounds the human-readable part of a derived key so that keys
// stay readable in `consul kv get -recurse` output.
const readableMax = 80

// KeyFromIdentity turns an identity into a KV path segment: a readable part
// (lowercase [a-z0-9._-], other runs replaced by '-', at most 80 bytes), '-',
// and the first 10 hex digits of sha256(identity). The hash keeps identities
// that differ only in case or in replaced characters apart, so the readable
// part may be lossy.
func KeyFromIdentity(identity string) string {
	sum := sha256.Sum256([]byte(identity))
	hash := hex.EncodeToString(sum[:])[:10]

	var b strings.Builder
	dash := false
	for _, c := range []byte(strings.ToLower(identity)) {
		if keyByte(c) {
			b.WriteByte(c)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	readable := b.String()
	if len(readable) > readableMax {
		readable = readable[:readableMax]
	}
	readable = strings.Trim(readable, "-")
	if readable == "" {
		return hash
	}
	return readable + "-" + hash
}

func keyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// CheckUnlockPolicy validates a Repository.UnlockNative value ("" means never).
func CheckUnlockPolicy(policy string) error {
	switch policy {
	case "", UnlockNever, UnlockStale, UnlockAll:
		return nil
	}
	return fmt.Errorf("plugin: unknown unlock_native policy %q (want %q, %q or %q)", policy, UnlockNever, UnlockStale, UnlockAll)
}

// MergeEnv renders user and then own as sorted KEY=VALUE entries. Entries of
// own win: they are what the lock was derived from (a RESTIC_REPOSITORY in
// the user's env must not point the tool at another repository than the
// one that is locked).
func MergeEnv(user, own map[string]string) []string {
	all := make(map[string]string, len(user)+len(own))
	maps.Copy(all, user)
	maps.Copy(all, own)
	out := make([]string, 0, len(all))
	for _, k := range slices.Sorted(maps.Keys(all)) {
		out = append(out, k+"="+all[k])
	}
	return out
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
