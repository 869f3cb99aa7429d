// Package location holds the normalization rules the plugins share when they
// turn a repository location into an identity: host names, ports and paths.
//
// The rules lean towards merging: two spellings that might be the same
// repository should share one lock (at worst jobs wait for each other),
// because two locks for one repository break mutual exclusion.
package location

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Host normalizes a host name or address as it appears in a URL authority:
// DNS names are case-insensitive and a trailing dot only marks them as fully
// qualified; IP addresses are written in their canonical form (IPv6 in
// brackets, so a port can follow). Errors here and in Port do not quote
// their input, which comes from a location that may hold a password.
func Host(h string) (string, error) {
	if h == "" {
		return "", errors.New("no host")
	}
	if strings.HasPrefix(h, "[") {
		inner, ok := strings.CutSuffix(h[1:], "]")
		if !ok {
			return "", errors.New("host: unbalanced '['")
		}
		a, err := netip.ParseAddr(inner)
		if err != nil || !a.Is6() {
			return "", errors.New("host: not an IPv6 address in brackets")
		}
		return "[" + a.String() + "]", nil
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Is6() {
			return "[" + a.String() + "]", nil
		}
		return a.String(), nil
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "" || strings.ContainsAny(h, "/:@[] \t\n") {
		return "", errors.New("host: not a host name or address")
	}
	return h, nil
}

// Port returns p in canonical decimal, or "" when p is empty or equals def.
func Port(p string, def int) (string, error) {
	if p == "" {
		return "", nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", errors.New("port: not a port number")
	}
	if n == def {
		return "", nil
	}
	return strconv.Itoa(n), nil
}

// HostPort joins a normalized host and port ("" for none).
func HostPort(host, port string) string {
	if port == "" {
		return host
	}
	return host + ":" + port
}

// CleanRooted cleans p as a path below a root: "..", "." and repeated or
// trailing slashes go, and ".." cannot climb above the root. The result has
// no leading slash; "" is the root itself.
func CleanRooted(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// Local is the identity of a repository on a file system path:
// "TOOL+local://HOST/abs/path", or "TOOL+local:///abs/path" when the path is
// shared storage reachable under the same path from every host (NFS). A
// relative p is resolved against dir. Symbolic links are not
// resolved: plugins do not touch the file system, and lock_key covers the
// case. dir is the config file's directory; an empty dir refuses relative
// paths.
func Local(tool, p, dir, host string, shared bool) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	if strings.HasPrefix(p, "~") {
		// The location reaches the tool through the environment, where no
		// shell expands "~": the tool would use a directory literally named "~".
		return "", fmt.Errorf("path %q starts with '~', which is not expanded in the tool's environment; write the absolute path", p)
	}
	if !filepath.IsAbs(p) {
		if dir == "" {
			// Never the working directory: one config must give the same
			// lock from wherever repolock is started.
			return "", fmt.Errorf("path %q is relative and there is no config directory to resolve it against; write it absolute", p)
		}
		if !filepath.IsAbs(dir) {
			return "", fmt.Errorf("make %q absolute: working directory %q is not absolute", p, dir)
		}
		p = filepath.Join(dir, p)
	}
	p = filepath.ToSlash(filepath.Clean(p))
	if shared {
		return tool + "+local://" + p, nil
	}
	if host == "" {
		return "", fmt.Errorf("local path %q needs this host's name to be bound to it (or declare the path shared storage)", p)
	}
	h, err := Host(host)
	if err != nil {
		return "", fmt.Errorf("this host's name: %w", err)
	}
	return tool + "+local://" + h + p, nil
}

// ParseURL parses a URL-form location. Its errors never quote the input:
// url.Parse's would, and the input may hold a password. A query or fragment
// is refused, because a '?' or '#' in an unencoded password makes url.Parse
// split the authority in the wrong place (and a digit-only password would
// then pass for a port).
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		return nil, errors.New("not a valid URL (percent-encode special characters in a user name or password)")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, errors.New("a '?' or '#' in the URL: percent-encode them in a user name or password")
	}
	return u, nil
}

// InDir is p made absolute against dir when it is a relative path and dir
// is set: what the tool must be given so that it opens the directory the
// lock was derived for, whatever its working directory.
func InDir(p, dir string) string {
	if p == "" || filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}

// IndexOutsideBrackets is the index of the first c in s outside "[...]"
// (an IPv6 address in a host part), or -1.
func IndexOutsideBrackets(s string, c byte) int {
	inBracket := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			inBracket = true
		case ']':
			inBracket = false
		case c:
			if !inBracket {
				return i
			}
		}
	}
	return -1
}
