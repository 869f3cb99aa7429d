// Package borg adapts BorgBackup 1.x to repolock: repository identities for
// borg's location syntax, the BORG_* environment, lock modes of borg
// subcommands, borg's exit codes and `borg break-lock`.
//
// Borg 2 changed its location syntax and commands; it is not covered here.
package borg

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/plugin"
	"github.com/repolock/repolock/plugin/internal/argv"
	"github.com/repolock/repolock/plugin/internal/location"
)

// Name is the tool name in configuration and the program name borg is run by.
const Name = "borg"

// Plugin is the borg adapter.
type Plugin struct{}

// Name implements plugin.Plugin.
func (*Plugin) Name() string { return Name }

var urlScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// Identity implements plugin.Plugin. It follows borg 1.x's Location parser
// (helpers/parseformat.py) and how `borg serve` resolves the path it is sent:
//
//   - /abs/path, rel/path, file:///abs/path: local; made absolute, cleaned,
//     bound to the host ("borg+local://HOST/abs"), or "borg+local:///abs"
//     with SharedLocal.
//   - ssh://[user@]host[:port]/abs/path and scp-style [user@]host:/abs/path:
//     "borg+ssh://host[:port]/abs/path"; the user does not matter. Port 22
//     is dropped.
//   - Paths relative to the login user's home: scp-style host:rel and
//     host:~/rel, URL-style ssh://host/./rel and ssh://host/~/rel. They keep
//     the user, written as that user's home: "borg+ssh://host/~user/rel".
//   - ~name/rel (scp) and ssh://host/~name/rel are in name's home whoever
//     logs in: "borg+ssh://host/~name/rel", so "u@h:rel" ≡ "v@h:~u/rel".
//
// A home directory is not resolved to its absolute path (that needs the
// server), so "u@h:rel" and "u@h:/home/u/rel" get different identities;
// write one spelling everywhere or set lock_key.
func (*Plugin) Identity(r plugin.Repository) (string, error) {
	loc := r.Location
	switch {
	case loc == "":
		return "", errors.New("location is empty")
	case strings.HasPrefix(loc, "ssh://"):
		user, host, port, pth, err := splitSSHURL(loc[len("ssh://"):])
		if err != nil {
			return "", err
		}
		return remoteIdentity(user, host, port, normpathSpecial(pth))
	case strings.HasPrefix(loc, "file://"):
		pth := loc[len("file://"):]
		if !strings.HasPrefix(pth, "/") {
			return "", errors.New("want file:///absolute/path")
		}
		return localIdentity(r.BaseDir, pth, r)
	case urlScheme.MatchString(loc):
		return "", errors.New("borg 1.x knows ssh:// and file:// URLs only; set lock_key for others")
	}
	if user, host, pth, ok := splitSCP(loc); ok {
		// borg turns the scp form into its URL form: "~x" → "/~x",
		// "rel" → "/./rel" (relative to the login directory, the home).
		pth = normpathSpecial(pth)
		switch {
		case strings.HasPrefix(pth, "~"):
			pth = "/" + pth
		case !strings.HasPrefix(pth, "/"):
			pth = "/./" + pth
		}
		return remoteIdentity(user, host, "", pth)
	}
	return localIdentity(r.BaseDir, loc, r)
}

func localIdentity(dir, pth string, r plugin.Repository) (string, error) {
	if strings.Contains(pth, "::") {
		return "", errArchive
	}
	return location.Local(Name, pth, dir, r.Host, r.SharedLocal)
}

var errArchive = errors.New("the location names an archive (::); give the repository only")

// splitSSHURL splits what follows "ssh://": [user@]host[:port]/path.
func splitSSHURL(s string) (user, host, port, pth string, err error) {
	auth, rest, ok := cutAuthority(s)
	if !ok {
		return "", "", "", "", errors.New("want ssh://[user@]host[:port]/path")
	}
	if at := strings.IndexByte(auth, '@'); at >= 0 {
		user, auth = auth[:at], auth[at+1:]
		if strings.Contains(user, ":") {
			return "", "", "", "", errors.New("borg ssh:// URLs take no password; use ssh keys")
		}
	}
	host, port = auth, ""
	if strings.HasPrefix(auth, "[") {
		end := strings.IndexByte(auth, ']')
		if end < 0 {
			return "", "", "", "", errors.New("unbalanced '[' in host")
		}
		host = auth[:end+1]
		if tail := auth[end+1:]; tail != "" {
			p, isPort := strings.CutPrefix(tail, ":")
			if !isPort {
				return "", "", "", "", errors.New("unexpected text after ']'")
			}
			port = p
		}
	} else if h, p, hasPort := strings.Cut(auth, ":"); hasPort {
		host, port = h, p
	}
	return user, host, port, rest, nil
}

// cutAuthority splits s at the first '/' outside "[...]"; the path keeps
// its leading slash.
func cutAuthority(s string) (auth, pth string, ok bool) {
	i := location.IndexOutsideBrackets(s, '/')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i:], i > 0
}

// splitSCP matches borg's scp_re: [user@]host:path, where the user has no
// '@', ':' or '/', the host has no ':' or '/' (or is a bracketed IPv6
// address), and the path does not start with ':' or "//". Anything else is a
// local path.
func splitSCP(s string) (user, host, pth string, ok bool) {
	try := func(s string) (string, string, bool) {
		var h, rest string
		if strings.HasPrefix(s, "[") {
			end := strings.Index(s, "]:")
			if end < 0 {
				return "", "", false
			}
			h, rest = s[:end+1], s[end+2:]
		} else {
			i := strings.IndexAny(s, ":/")
			if i <= 0 || s[i] != ':' {
				return "", "", false
			}
			h, rest = s[:i], s[i+1:]
		}
		if rest == "" || strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, "//") {
			return "", "", false
		}
		return h, rest, true
	}
	if at := strings.IndexByte(s, '@'); at > 0 && !strings.ContainsAny(s[:at], ":/") {
		if h, p, ok := try(s[at+1:]); ok {
			return s[:at], h, p, true
		}
	}
	if h, p, ok := try(s); ok {
		return "", h, p, true
	}
	return "", "", "", false
}

// normpathSpecial is borg's: clean the path, but keep the "/./" that marks
// a path relative to the login directory.
func normpathSpecial(p string) string {
	relative := strings.HasPrefix(p, "/./")
	p = path.Clean(p)
	if relative {
		return "/." + p
	}
	return p
}

// remoteIdentity interprets a path in borg's URL form the way `borg serve`
// does: "/./x" and "/~/x" are relative to the login user's home, "/~name/x"
// to name's home, anything else is absolute.
func remoteIdentity(user, host, port, pth string) (string, error) {
	if strings.Contains(pth, "::") {
		return "", errArchive
	}
	h, err := location.Host(host)
	if err != nil {
		return "", err
	}
	pt, err := location.Port(port, 22)
	if err != nil {
		return "", err
	}
	prefix := "borg+ssh://" + location.HostPort(h, pt)

	var home, rel string
	switch {
	case strings.HasPrefix(pth, "/./"):
		rel = pth[len("/./"):]
	case pth == "/~" || strings.HasPrefix(pth, "/~/"):
		rel = strings.TrimPrefix(pth[len("/~"):], "/")
	case strings.HasPrefix(pth, "/~"):
		home, rel, _ = strings.Cut(pth[len("/~"):], "/")
	default:
		return prefix + pth, nil
	}
	if home == "" {
		if user == "" {
			// The login user is whatever ssh picks (ssh_config, $USER), which
			// repolock cannot know: guessing could give one repository two locks.
			return "", errors.New("a path relative to the home directory needs the login user: write user@host, an absolute path, or set lock_key")
		}
		home = user
	}
	id := prefix + "/~" + home
	// Not CleanRooted: the scp form sends "../x" as is, and borg serve
	// resolves it against the home directory, above it.
	if rel = path.Clean(rel); rel != "." {
		id += "/" + rel
	}
	return id, nil
}

// Env implements plugin.Plugin. borg 1.x has no password-file variable, so
// a PasswordFile becomes a BORG_PASSCOMMAND that prints it; borg splits that
// command with Python's shlex (no shell runs), for which the path is quoted
// here. BORG_EXIT_CODES=modern makes borg ≥ 1.4 report specific exit codes
// (older borg ignores it and keeps 0/1/2, which mean the same). The config
// allows one password source; should both be set, the command wins.
func (*Plugin) Env(r plugin.Repository) []string {
	own := map[string]string{
		"BORG_REPO":       envLocation(r),
		"BORG_EXIT_CODES": "modern",
	}
	switch {
	case r.PasswordCommand != "":
		own["BORG_PASSCOMMAND"] = r.PasswordCommand
	case r.PasswordFile != "":
		own["BORG_PASSCOMMAND"] = "cat -- " + shellQuote(r.PasswordFile)
	}
	return plugin.SortedEnv(own)
}

// OwnsEnv implements plugin.Plugin: BORG_REPO, BORG_OTHER_REPO (borg 2's
// second repository) and every BORG_PASS* variable (BORG_PASSPHRASE,
// BORG_PASSPHRASE_FD, BORG_PASSCOMMAND) and BORG_NEW_PASSPHRASE.
func (*Plugin) OwnsEnv(name string) bool {
	return name == "BORG_REPO" || name == "BORG_OTHER_REPO" || name == "BORG_NEW_PASSPHRASE" ||
		strings.HasPrefix(name, "BORG_PASS")
}

// envLocation is the location borg is given: a relative local path made
// absolute against the config's directory, as the identity was.
func envLocation(r plugin.Repository) string {
	if strings.Contains(r.Location, "://") {
		return r.Location
	}
	if _, _, _, remote := splitSCP(r.Location); remote {
		return r.Location
	}
	return location.InDir(r.Location, r.BaseDir)
}

// shellQuote quotes s for a POSIX shell and for Python's shlex.split:
// inside single quotes everything is literal, and a single quote is written
// as '\” (close, escaped quote, reopen).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// commonFlags are borg 1.x common options that take a separate value.
// argparse also accepts unambiguous abbreviations ("--lock-w 5"); argv.First
// handles unknown flags followed by a value.
var commonFlags = argv.Flags{
	Long: argv.Set("lock-wait", "remote-path", "remote-ratelimit", "upload-ratelimit", "upload-buffer",
		"remote-buffer", "rsh", "umask", "debug-topic", "debug-profile"),
	Bool: argv.Set("critical", "error", "warning", "info", "verbose", "debug", "progress", "iec",
		"log-json", "show-version", "show-rc", "consider-part-files", "bypass-lock", "help", "version"),
}

// modes maps borg 1.x subcommands to the cluster lock they need. Borg 1.x
// lets only one writer use a repository, so every command that writes
// (create included) is exclusive; commands that only read share the lock.
// check is exclusive: borg 1.2 locks it exclusively itself.
var modes = map[string]consullock.Mode{
	"list": consullock.Shared, "info": consullock.Shared, "extract": consullock.Shared,
	"diff": consullock.Shared, "export-tar": consullock.Shared, "mount": consullock.Shared,
	"umount": consullock.Shared, "help": consullock.Shared, "version": consullock.Shared,

	"create": consullock.Exclusive, "prune": consullock.Exclusive, "compact": consullock.Exclusive,
	"delete": consullock.Exclusive, "rename": consullock.Exclusive, "recreate": consullock.Exclusive,
	"check": consullock.Exclusive, "upgrade": consullock.Exclusive, "init": consullock.Exclusive,
	"break-lock": consullock.Exclusive, "with-lock": consullock.Exclusive, "config": consullock.Exclusive,
	"debug": consullock.Exclusive, "import-tar": consullock.Exclusive, "serve": consullock.Exclusive,
	// Refined by their own subcommand in Mode.
	"key": consullock.Exclusive, "benchmark": consullock.Exclusive,
}

// Mode implements plugin.Plugin. An unknown subcommand is exclusive.
func (*Plugin) Mode(args []string) (consullock.Mode, error) {
	if err := plugin.RunsTool(Name, args); err != nil {
		return "", err
	}
	sub, rest, ok := argv.First(args[1:], commonFlags, func(w string) bool { _, k := modes[w]; return k })
	if !ok {
		return "", fmt.Errorf("borg: no subcommand in the command: %w", plugin.ErrModeNotInferred)
	}
	m, known := modes[sub]
	if !known {
		return consullock.Exclusive, nil
	}
	never := func(string) bool { return false }
	switch sub {
	case "key":
		// key export only reads the key; import, change-passphrase,
		// change-location… rewrite it.
		if next, _, _ := argv.First(rest, commonFlags, never); next == "export" {
			return consullock.Shared, nil
		}
	case "benchmark":
		// benchmark cpu never opens a repository; benchmark crud writes to one.
		if next, _, _ := argv.First(rest, commonFlags, never); next == "cpu" {
			return consullock.Shared, nil
		}
	}
	return m, nil
}

// classes are borg's exit codes with BORG_EXIT_CODES=modern, from borg
// 1.4's docs/internals/frontends.rst (borg 2 uses the same numbers). Codes
// 3–99 are errors, 100–127 warnings. Not checked against every 1.4.x
// release: an unlisted code in those ranges still gets its range's class.
var classes = map[int]plugin.Class{
	0: {Name: plugin.NameSuccess, Success: true},
	1: {Name: plugin.NameWarning, Success: true},
	2: {Name: plugin.NameError},

	3:  {Name: "cancelled by user"},
	4:  {Name: "command error"},
	5:  {Name: "placeholder error"},
	6:  {Name: "invalid placeholder"},
	10: {Name: "repository already exists"},
	11: {Name: "attic repository"},
	12: {Name: "repository check needed"},
	13: {Name: plugin.NameNoRepository},
	14: {Name: "insufficient free space"},
	15: {Name: "invalid repository"},
	16: {Name: "invalid repository config"},
	17: {Name: "object not found"},
	18: {Name: "parent path does not exist"},
	19: {Name: "path already exists"},
	20: {Name: "storage quota exceeded"},
	21: {Name: "permission denied"},
	25: {Name: "unsupported repository feature"},
	26: {Name: "no manifest"},
	27: {Name: "unsupported manifest"},
	30: {Name: "archive already exists"},
	31: {Name: "archive does not exist"},
	32: {Name: "file name encoding error"},
	40: {Name: "invalid key file"},
	41: {Name: "key file mismatch"},
	42: {Name: "key file not found"},
	43: {Name: "not a borg key file"},
	44: {Name: "repository key not found"},
	45: {Name: "repository id mismatch"},
	46: {Name: "unencrypted repository"},
	47: {Name: "unknown key type"},
	48: {Name: "unsupported payload"},
	49: {Name: "unsupported key format"},
	50: {Name: "no passphrase"},
	51: {Name: "passcommand failed"},
	52: {Name: plugin.NameWrongPassword},
	53: {Name: "password retries exceeded"},
	60: {Name: "cache initialization aborted"},
	61: {Name: "encryption method mismatch"},
	62: {Name: "repository access aborted"},
	63: {Name: "repository id not unique"},
	64: {Name: "repository replay"},
	// 70 LockError and 73 LockTimeout: another borg holds the repository.
	70: {Name: plugin.NameNativeLockBusy},
	71: {Name: "native lock error"}, // LockErrorT: unexpected failure while acquiring
	72: {Name: "native lock failed"},
	73: {Name: plugin.NameNativeLockBusy},
	74: {Name: "native lock not held"},
	75: {Name: "native lock held by another"},
	80: {Name: "connection closed"},
	81: {Name: "connection closed"},
	82: {Name: "invalid rpc method"},
	83: {Name: "path not allowed"},
	84: {Name: "server too old"},
	85: {Name: "rpc data format error"},
	86: {Name: "rpc data format error"},
	87: {Name: "connection broken"},
	90: {Name: "integrity error"},
	91: {Name: "file integrity error"},
	92: {Name: "decompression error"},

	100: {Name: "warning: file changed", Success: true},
	101: {Name: "warning: include pattern never matched", Success: true},
	102: {Name: "warning: backup error", Success: true},
	103: {Name: "warning: race condition", Success: true},
	104: {Name: "warning: os error", Success: true},
	105: {Name: "warning: permission denied", Success: true},
	106: {Name: "warning: io error", Success: true},
	107: {Name: "warning: file not found", Success: true},
}

// Classify implements plugin.Plugin.
func (*Plugin) Classify(code int) plugin.Class {
	if c, ok := classes[code]; ok {
		return c
	}
	switch {
	case code >= 100 && code <= 127:
		return plugin.Class{Name: plugin.NameWarning, Success: true}
	case code > 128:
		if c, ok := plugin.SignalClass(code); ok {
			return c
		}
	}
	return plugin.Class{Name: plugin.NameError}
}

// UnlockCommand implements plugin.Plugin. Borg 1.x locks carry no
// timestamp a stale check could use across hosts, so there is no
// stale-only unlock: under "stale" nothing is run (borg itself removes
// the locks of dead processes on this host, with BORG_HOSTNAME_IS_UNIQUE),
// and native locks are cleared only with "all" (`borg break-lock`).
func (*Plugin) UnlockCommand(policy string) []string {
	if policy == plugin.UnlockAll {
		return []string{Name, "break-lock"}
	}
	return nil
}

// repoSlot are the subcommands whose first positional argument is the
// repository (or an archive in it); for the others only REPO::ARCHIVE
// forms name one. key, benchmark and debug take a subcommand of their own
// first.
var repoSlot = argv.Set("prune", "compact", "list", "info", "check", "delete", "init", "break-lock",
	"upgrade", "recreate", "mount", "with-lock", "diff", "export-tar", "import-tar", "config",
	"key", "benchmark", "debug")

// twoLevel are the subcommands whose second word is a subcommand too.
var twoLevel = argv.Set("key", "benchmark", "debug")

// optionsWithValue are borg 1.x subcommand options that take a separate
// value, so that the value is not read as a positional argument.
var optionsWithValue = argv.Flags{
	Long: argv.Set("comment", "timestamp", "checkpoint-interval", "chunker-params", "compression",
		"exclude", "exclude-from", "pattern", "patterns-from", "stdin-name", "stdin-user", "stdin-group",
		"stdin-mode", "files-cache", "exclude-if-present", "keep-within", "keep-last", "keep-secondly",
		"keep-minutely", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly",
		"prefix", "glob-archives", "format", "sort-by", "first", "last", "max-duration", "encryption",
		"storage-quota", "strip-components", "threshold", "lock-wait", "remote-path", "rsh", "umask",
		"upload-ratelimit", "upload-buffer", "remote-ratelimit", "remote-buffer", "debug-topic",
		"debug-profile", "path", "tar-filter", "target", "recompress", "options"),
	Short: "eCcaPHdwmy",
}

// Targets implements plugin.Plugin. borg 1.x names the repository as a
// positional argument: REPO::ARCHIVE anywhere ("::ARCHIVE" alone uses
// BORG_REPO), or REPO as the first positional argument of the subcommands
// in repoSlot. That slot is the first positional word that can be a
// location (has '/' or ':' or starts with '.'), so the value of an option
// this table does not know (argparse accepts abbreviations such as
// --keep-d 7) does not hide the repository after it.
func (*Plugin) Targets(args []string) ([]plugin.Target, error) {
	if plugin.RunsTool(Name, args) != nil {
		return nil, plugin.ErrOpaque
	}
	isCommand := func(w string) bool { _, k := modes[w]; return k }
	sub, rest, ok := argv.First(args[1:], commonFlags, isCommand)
	if !ok {
		return nil, nil
	}
	if twoLevel[sub] {
		_, rest, _ = argv.First(rest, optionsWithValue, func(string) bool { return true })
	}
	var out []plugin.Target
	slotTaken := false
	for i, word := range argv.Positionals(rest, optionsWithValue) {
		if sub == "with-lock" && i > 0 && slotTaken {
			break // the command borg runs under its lock
		}
		repo, _, archive := strings.Cut(word, "::")
		switch {
		case archive:
			slotTaken = true
			if repo != "" { // "::ARCHIVE" alone: in BORG_REPO
				out = append(out, plugin.Target{Location: repo, Arg: word})
			}
		case repoSlot[sub] && !slotTaken && (strings.ContainsAny(word, "/:") || strings.HasPrefix(word, ".")):
			slotTaken = true
			out = append(out, plugin.Target{Location: repo, Arg: word})
		}
	}
	return out, nil
}
