// Package restic adapts restic (≥ 0.17) to repolock: repository identities
// for every restic backend, the RESTIC_* environment, lock modes of restic
// subcommands, restic's documented exit codes and `restic unlock`.
package restic

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/plugin"
	"github.com/repolock/repolock/plugin/internal/argv"
	"github.com/repolock/repolock/plugin/internal/location"
)

// Name is the tool name in configuration and the program name restic is run by.
const Name = "restic"

// Plugin is the restic adapter.
type Plugin struct{}

// Name implements plugin.Plugin.
func (*Plugin) Name() string { return Name }

// Identity implements plugin.Plugin. It mirrors restic's own location
// parser (internal/backend/location and each backend's ParseConfig), so
// that what is locked is what restic opens:
//
//   - local path or local:PATH: made absolute, cleaned, and bound to the host
//     ("restic+local://HOST/abs"), or "restic+local:///abs" with SharedLocal.
//   - sftp:[user@]host:path and sftp://[user@]host[:port]/path: an absolute
//     path does not depend on the user ("restic+sftp://host/abs"); a relative
//     path is under the user's home and keeps the user
//     ("restic+sftp://host/~user/rel"). Port 22 is dropped.
//   - rest:http(s)://[user:pass@]host[:port]/path: credentials dropped; the
//     port is always written (80/443 filled in), so http and https reach
//     different servers unless they share a port.
//   - s3: see s3Identity.
//   - b2:, gs:, azure:, swift:  "restic+SCHEME://bucket/prefix", the prefix
//     cleaned and without a leading slash (restic strips it too); b2, gs and
//     azure bucket/container names are lowercased (those services only
//     allow lowercase names, so this merges nothing that could differ).
//   - rclone:remote:path  "restic+rclone:remote:path", path cleaned.
func (*Plugin) Identity(r plugin.Repository) (string, error) {
	loc := r.Location
	if loc == "" {
		return "", errors.New("location is empty")
	}
	scheme, rest, hasColon := strings.Cut(loc, ":")
	switch scheme {
	case "local":
		return location.Local(Name, rest, r.BaseDir, r.Host, r.SharedLocal)
	case "sftp":
		return sftpIdentity(loc)
	case "rest":
		return restIdentity(rest)
	case "s3":
		return s3Identity(rest)
	case "b2", "gs", "azure":
		return containerIdentity(scheme, rest, true)
	case "swift":
		return containerIdentity(scheme, rest, false)
	case "rclone":
		return rcloneIdentity(rest)
	}
	// Like restic: an unknown "scheme:" is refused unless the whole thing is
	// plainly a path, so a typo ("sfpt:") does not lock a local directory.
	if hasColon && !isPath(loc) {
		return "", errors.New(`unknown restic backend; a local directory whose name has ':' needs the "local:" prefix`)
	}
	return location.Local(Name, loc, r.BaseDir, r.Host, r.SharedLocal)
}

// isPath is restic's test for a location that is a path even though it
// contains a colon.
func isPath(s string) bool {
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, "../") || strings.HasPrefix(s, `\`) || strings.HasPrefix(s, `..\`) {
		return true
	}
	// Windows drive paths "C:\x", "C:/x".
	return len(s) >= 3 && (s[0]|0x20 >= 'a' && s[0]|0x20 <= 'z') && s[1] == ':' && (s[2] == '/' || s[2] == '\\')
}

func sftpIdentity(loc string) (string, error) {
	var user, host, port, dir string
	if strings.HasPrefix(loc, "sftp://") {
		u, err := location.ParseURL(loc)
		if err != nil {
			return "", err
		}
		if u.User != nil {
			user = u.User.Username() // a password here is dropped, never kept
		}
		host, port = u.Hostname(), u.Port()
		if u.Path == "" {
			return "", errors.New("no directory: sftp://host//absolute/path or sftp://host/relative/path")
		}
		// restic drops the slash after the authority: "//srv" is "/srv"
		// (absolute), "/rel" is "rel" (relative to the home directory).
		dir = u.Path[1:]
	} else {
		// sftp:[user@]host:path. The host ends at the first colon outside
		// brackets; a user name may itself contain '@', the host cannot.
		s := strings.TrimPrefix(loc, "sftp:")
		sep := location.IndexOutsideBrackets(s, ':')
		if sep < 0 {
			return "", errors.New("want sftp:[user@]host:path")
		}
		host, dir = s[:sep], s[sep+1:]
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			user, host = host[:at], host[at+1:]
		}
	}
	h, err := location.Host(host)
	if err != nil {
		return "", err
	}
	pt, err := location.Port(port, 22)
	if err != nil {
		return "", err
	}
	hp := location.HostPort(h, pt)

	clean := path.Clean(dir)
	if strings.HasPrefix(clean, "~") {
		return "", errors.New("restic refuses sftp paths starting with '~'; write the path relative to the home directory (sftp:user@host:dir) or absolute")
	}
	if path.IsAbs(clean) {
		// The same files whoever logs in: the user is not part of the identity.
		return "restic+sftp://" + hp + clean, nil
	}
	if user == "" {
		// The home directory belongs to whatever user ssh picks (ssh_config,
		// $USER), which repolock cannot know: guessing could give one
		// repository two locks.
		return "", errors.New("a relative sftp path is in the login user's home directory: write user@host, an absolute path, or set lock_key")
	}
	return "restic+sftp://" + hp + homeRelative(user, clean), nil
}

// homeRelative writes a path relative to user's home as "/~user/rel".
func homeRelative(user, rel string) string {
	if rel == "." || rel == "" {
		return "/~" + user
	}
	return "/~" + user + "/" + rel
}

func restIdentity(s string) (string, error) {
	u, err := location.ParseURL(s)
	if err != nil {
		return "", err
	}
	var def int
	switch strings.ToLower(u.Scheme) {
	case "http":
		def = 80
	case "https":
		def = 443
	default:
		return "", errors.New("rest: only http:// and https:// servers are supported; set lock_key for others")
	}
	h, err := location.Host(u.Hostname())
	if err != nil {
		return "", err
	}
	pt, err := location.Port(u.Port(), 0)
	if err != nil {
		return "", err
	}
	if pt == "" {
		pt = strconv.Itoa(def)
	}
	// User and password are credentials of the client, not part of where
	// the repository is (rest-server's --private-repos puts the user in the
	// path anyway).
	return "restic+rest://" + h + ":" + pt + "/" + location.CleanRooted(u.Path), nil
}

// s3Identity handles what follows "s3:": "host[:port]/bucket/prefix",
// "//host/bucket/prefix" and "http(s)://host[:port]/bucket/prefix".
// The identity is "restic+s3://ENDPOINT/bucket/prefix" where:
//
//   - http and https are transport only: ports 80 and 443 are dropped
//     whichever scheme names them, other ports are kept. An S3 service
//     serves the same buckets over both.
//   - Any AWS S3 endpoint (s3.amazonaws.com, s3.REGION.amazonaws.com,
//     s3-REGION…, s3.dualstack.REGION…, s3-fips…) becomes s3.amazonaws.com:
//     bucket names are global in AWS, so the endpoint does not change which
//     bucket is meant (the .amazonaws.com.cn partition is kept apart).
//   - An AWS virtual-hosted endpoint "BUCKET.s3….amazonaws.com/X/p" is the
//     bucket BUCKET with key prefix "X/p": restic (minio-go) does not
//     recognise that host as AWS, sends path-style requests to it, and AWS
//     takes the bucket from the host name.
//   - Bucket names are lowercased (S3 naming rules; merging is the safe
//     direction), the prefix is cleaned and keeps its case.
func s3Identity(s string) (string, error) {
	var hostport, rest string
	switch {
	case strings.HasPrefix(s, "http"):
		u, err := location.ParseURL(s)
		if err != nil {
			return "", err
		}
		if sc := strings.ToLower(u.Scheme); sc != "http" && sc != "https" {
			return "", errors.New("s3: want s3:https://endpoint/bucket/prefix or s3:endpoint/bucket/prefix")
		}
		hostport = u.Host
		rest = strings.TrimPrefix(u.Path, "/")
	default:
		s = strings.TrimPrefix(s, "//")
		hostport, rest, _ = strings.Cut(s, "/")
	}
	if strings.Contains(hostport, "@") {
		return "", errors.New("s3: credentials belong in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, not in the location")
	}
	host, port := hostport, ""
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	}
	h, err := location.Host(host)
	if err != nil {
		return "", err
	}
	pt, err := location.Port(port, 443)
	if err != nil {
		return "", err
	}
	if pt == "80" {
		pt = ""
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return "", errors.New("s3: no bucket name")
	}
	prefix = location.CleanRooted(prefix)
	if pt == "" {
		h, bucket, prefix = awsS3(h, bucket, prefix)
	}
	id := "restic+s3://" + location.HostPort(h, pt) + "/" + strings.ToLower(bucket)
	if prefix != "" {
		id += "/" + prefix
	}
	return id, nil
}

// awsS3 canonicalizes an AWS S3 endpoint, see s3Identity. Hosts it does not
// recognise for sure (access points, PrivateLink, other services) are kept.
func awsS3(host, bucket, prefix string) (string, string, string) {
	var domain string
	switch {
	case strings.HasSuffix(host, ".amazonaws.com"):
		domain = "amazonaws.com"
	case strings.HasSuffix(host, ".amazonaws.com.cn"):
		domain = "amazonaws.com.cn"
	default:
		return host, bucket, prefix
	}
	if strings.Contains(host, ".vpce") {
		return host, bucket, prefix
	}
	labels := strings.Split(strings.TrimSuffix(host, "."+domain), ".")
	for i, l := range labels {
		if strings.Contains(l, "accesspoint") || strings.Contains(l, "object-lambda") || strings.Contains(l, "control") {
			return host, bucket, prefix
		}
		if l != "s3" && !strings.HasPrefix(l, "s3-") {
			continue
		}
		canonical := "s3." + domain
		if i == 0 {
			return canonical, bucket, prefix
		}
		// Virtual-hosted: the labels before "s3" are the bucket (which may
		// contain dots); restic's bucket is the first key segment.
		return canonical, strings.Join(labels[:i], "."), location.CleanRooted(bucket + "/" + prefix)
	}
	return host, bucket, prefix
}

func containerIdentity(scheme, s string, lower bool) (string, error) {
	bucket, prefix, _ := strings.Cut(s, ":")
	if bucket == "" || strings.ContainsAny(bucket, "/@") {
		return "", fmt.Errorf("want %s:name:/prefix", scheme)
	}
	if lower {
		bucket = strings.ToLower(bucket)
	}
	id := "restic+" + scheme + "://" + bucket
	if prefix = location.CleanRooted(prefix); prefix != "" {
		id += "/" + prefix
	}
	return id, nil
}

func rcloneIdentity(s string) (string, error) {
	// "remote:path", or ":backend:path" for an on-the-fly remote.
	var remote, p string
	var ok bool
	if rest, isBackend := strings.CutPrefix(s, ":"); isBackend {
		remote, p, ok = strings.Cut(rest, ":")
		remote = ":" + remote
	} else {
		remote, p, ok = strings.Cut(s, ":")
	}
	if !ok || remote == "" || remote == ":" {
		return "", errors.New("want rclone:remote:path")
	}
	if strings.Contains(remote, ",") {
		// Connection-string parameters (":s3,secret_access_key=…") may be
		// secrets, and the identity must not carry any.
		return "", errors.New("rclone connection strings with parameters may carry secrets; configure a named remote or set lock_key")
	}
	// The leading slash is kept: for sftp-like remotes "/x" is absolute and
	// "x" is relative to the home directory.
	if p != "" {
		if p = path.Clean(p); p == "." {
			p = ""
		}
	}
	return "restic+rclone:" + remote + ":" + p, nil
}

// Env implements plugin.Plugin: RESTIC_REPOSITORY as written (it may hold a
// rest-server password, which is why it travels only in the environment),
// and the password source.
func (*Plugin) Env(r plugin.Repository) []string {
	return plugin.SortedEnv(repoEnv("RESTIC_", r))
}

// FromEnv implements plugin.Copier: the same variables for the source of
// restic copy (RESTIC_FROM_REPOSITORY, RESTIC_FROM_PASSWORD_FILE, …).
func (*Plugin) FromEnv(r plugin.Repository) []string {
	return plugin.SortedEnv(repoEnv("RESTIC_FROM_", r))
}

func repoEnv(prefix string, r plugin.Repository) map[string]string {
	own := map[string]string{prefix + "REPOSITORY": envLocation(r)}
	if r.PasswordFile != "" {
		own[prefix+"PASSWORD_FILE"] = r.PasswordFile
	}
	if r.PasswordCommand != "" {
		own[prefix+"PASSWORD_COMMAND"] = r.PasswordCommand
	}
	return own
}

// envLocation is the location restic is given: a relative local path made
// absolute against the config's directory, as the identity was.
func envLocation(r plugin.Repository) string {
	if rest, ok := strings.CutPrefix(r.Location, "local:"); ok {
		return "local:" + location.InDir(rest, r.BaseDir)
	}
	if strings.Contains(r.Location, ":") {
		return r.Location // a backend, or a path restic takes as it is
	}
	return location.InDir(r.Location, r.BaseDir)
}

// OwnsEnv implements plugin.Plugin: the variables restic reads to find a
// repository (RESTIC_REPOSITORY, RESTIC_REPOSITORY_FILE) or its password
// (RESTIC_PASSWORD, RESTIC_PASSWORD_FILE, RESTIC_PASSWORD_COMMAND), and
// all of their RESTIC_FROM_ counterparts for copy and init.
func (*Plugin) OwnsEnv(name string) bool {
	rest, ok := strings.CutPrefix(name, "RESTIC_")
	if !ok {
		return false
	}
	rest = strings.TrimPrefix(rest, "FROM_")
	return strings.HasPrefix(rest, "REPOSITORY") || strings.HasPrefix(rest, "PASSWORD")
}

// globalFlags are restic's persistent flags that take a separate value.
var globalFlags = argv.Flags{
	Long: argv.Set("repo", "repository-file", "password-file", "password-command", "key-hint",
		"cache-dir", "cacert", "tls-client-cert", "option", "limit-upload", "limit-download",
		"pack-size", "compression", "retry-lock", "stuck-request-timeout", "http-user-agent"),
	Short: "rpo",
	Bool: argv.Set("verbose", "quiet", "json", "no-cache", "cleanup-cache", "no-lock", "insecure-tls",
		"insecure-no-password", "no-extra-verify", "help"),
}

// modes maps each restic subcommand to the cluster lock it needs. Commands
// that only add data or only read share the lock; anything that removes or
// rewrites data, or repairs, checks or re-keys the repository, runs alone.
// check is exclusive: data that a concurrent backup adds or a prune removes
// while it reads shows up as errors. Every key subcommand is
// exclusive, list included, rather than keeping a list of the safe ones.
// Commands that never open a repository (version, help…) are shared so they
// never wait for a prune.
var modes = map[string]consullock.Mode{
	"backup": consullock.Shared, "copy": consullock.Shared, "restore": consullock.Shared,
	"ls": consullock.Shared, "cat": consullock.Shared, "find": consullock.Shared, "dump": consullock.Shared,
	"diff": consullock.Shared, "stats": consullock.Shared, "snapshots": consullock.Shared,
	"mount": consullock.Shared, "list": consullock.Shared, "cache": consullock.Shared,
	"version": consullock.Shared, "help": consullock.Shared, "generate": consullock.Shared,
	"options": consullock.Shared, "features": consullock.Shared, "self-update": consullock.Shared,
	"completion": consullock.Shared,

	"prune": consullock.Exclusive, "forget": consullock.Exclusive, "check": consullock.Exclusive,
	"repair": consullock.Exclusive, "rebuild-index": consullock.Exclusive, "tag": consullock.Exclusive,
	"key": consullock.Exclusive, "migrate": consullock.Exclusive, "recover": consullock.Exclusive,
	"init": consullock.Exclusive, "unlock": consullock.Exclusive, "rewrite": consullock.Exclusive,
}

// Mode implements plugin.Mode. An unknown subcommand is exclusive: a new
// restic command is safest assumed to write.
func (*Plugin) Mode(args []string) (consullock.Mode, error) {
	if err := plugin.RunsTool(Name, args); err != nil {
		return "", err
	}
	sub, _, ok := argv.First(args[1:], globalFlags, func(w string) bool { _, k := modes[w]; return k })
	if !ok {
		return "", fmt.Errorf("restic: no subcommand in the command: %w", plugin.ErrModeNotInferred)
	}
	if m, known := modes[sub]; known {
		return m, nil
	}
	return consullock.Exclusive, nil
}

// Classify implements plugin.Plugin with restic's documented exit codes.
func (*Plugin) Classify(code int) plugin.Class {
	switch code {
	case 0:
		return plugin.Class{Name: plugin.NameSuccess, Success: true}
	case 1:
		return plugin.Class{Name: plugin.NameError}
	case 2:
		return plugin.Class{Name: "go runtime error"}
	case 3:
		// backup could not read some source files; the snapshot was written.
		return plugin.Class{Name: plugin.NameWarning, Success: true}
	case 10:
		return plugin.Class{Name: plugin.NameNoRepository}
	case 11:
		return plugin.Class{Name: plugin.NameNativeLockBusy}
	case 12:
		return plugin.Class{Name: plugin.NameWrongPassword}
	}
	if c, ok := plugin.SignalClass(code); ok {
		return c
	}
	return plugin.Class{Name: plugin.NameError}
}

// UnlockCommand implements plugin.Plugin. "stale" runs plain `restic
// unlock`, which removes only locks restic considers stale (not refreshed
// for 30 minutes, or of a process that is gone on this host); "all" adds
// --remove-all.
func (*Plugin) UnlockCommand(policy string) []string {
	switch policy {
	case plugin.UnlockStale:
		return []string{Name, "unlock"}
	case plugin.UnlockAll:
		return []string{Name, "unlock", "--remove-all"}
	}
	return nil
}

// ListLocks implements plugin.LockLister. Listing locks never takes one.
func (*Plugin) ListLocks() []string { return []string{Name, "--no-lock", "list", "locks"} }

// ShowLock implements plugin.LockLister; --no-lock, because a read lock
// would be refused while the exclusive lock being described exists.
func (*Plugin) ShowLock(id string) []string { return []string{Name, "--no-lock", "cat", "lock", id} }

// ParseLock implements plugin.LockLister: the JSON restic stores in a lock file.
func (*Plugin) ParseLock(id string, out []byte) (plugin.NativeLock, error) {
	var l struct {
		Time      time.Time `json:"time"`
		Exclusive bool      `json:"exclusive"`
		Hostname  string    `json:"hostname"`
		Username  string    `json:"username"`
		PID       int       `json:"pid"`
	}
	if err := json.Unmarshal(out, &l); err != nil {
		return plugin.NativeLock{}, fmt.Errorf("restic: lock %s: %w", id, err)
	}
	return plugin.NativeLock{ID: id, Host: l.Hostname, User: l.Username, PID: l.PID, Time: l.Time, Exclusive: l.Exclusive}, nil
}

// Targets implements plugin.Plugin. restic names a repository only through
// flags, which cobra accepts anywhere in the command line until "--":
// --repo X, --repo=X, -r X, -rX, -r=X (also inside a group of short flags
// such as -vr X), and --from-repo for the source of copy and init. A
// repository file is refused: the file's content can change after the
// command was checked.
func (*Plugin) Targets(args []string) ([]plugin.Target, error) {
	if plugin.RunsTool(Name, args) != nil {
		return nil, plugin.ErrOpaque
	}
	var out []plugin.Target
	for i := 1; i < len(args); i++ {
		a := args[i]
		// No stop at "--": it may be a flag's value ("--tag --"), after
		// which cobra still reads flags. A file named "-r" is refused
		// rather than a repository missed.
		var name, value string
		var hasValue bool
		switch {
		case a == "--":
			continue
		case strings.HasPrefix(a, "--"):
			name, value, hasValue = strings.Cut(a[2:], "=")
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// Short flags: letters up to one that takes a value; only -r
			// names a repository.
			j := strings.IndexFunc(a[1:], func(c rune) bool { return strings.ContainsRune(shortWithValue, c) })
			if j < 0 || a[1+j] != 'r' {
				continue
			}
			name = "repo"
			value = strings.TrimPrefix(a[2+j:], "=")
			hasValue = value != ""
		default:
			continue
		}
		switch name {
		case "repo", "from-repo":
		case "repository-file", "from-repository-file":
			return nil, fmt.Errorf("restic: %s is refused: repolock sets the repository from the config (the file could name another one by the time restic reads it)", a)
		default:
			continue
		}
		arg := a
		if !hasValue {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("restic: %s has no value", a)
			}
			i++
			value = args[i]
			arg += " " + value
		}
		out = append(out, plugin.Target{Location: value, Arg: arg, From: name == "from-repo"})
	}
	return out, nil
}

// shortWithValue are restic's short flags that take a value (global and
// of its subcommands); a letter after one of them in the same word is part
// of its value.
const shortWithValue = "rpoeEHt"
