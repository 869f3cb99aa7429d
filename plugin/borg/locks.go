package borg

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/repolock/repolock/plugin"
)

// Borg 1.x keeps its lock in the repository's folder: lock.exclusive/, a
// folder holding one empty file named for its holder ("<host id>.<pid>-<thread>",
// the host id being "<fqdn>@<node>"), and lock.roster, JSON naming the
// exclusive and shared holders. No borg command lists them, so for a local
// repository they are read with sh. The listing exits 1 — and repolock
// clears without a listing (break-lock), as for a tool that cannot list —
// for a remote repository, and when the repository holds no lock: a busy
// exit then came from borg's cache lock, outside the repository, which
// break-lock clears too. The roster is listed only without an exclusive
// lock (it then names shared holders), so one holder counts once. The
// scripts read only BORG_REPO, which the plugin sets.
const (
	listScript = `d=${BORG_REPO%/}
[ -d "$d" ] || { echo "borg: the repository is not a local folder; its locks cannot be listed" >&2; exit 1; }
if [ -d "$d/lock.exclusive" ]; then ls -1A -- "$d/lock.exclusive"; exit 0; fi
if grep -q '\[\[' "$d/lock.roster" 2>/dev/null; then echo lock.roster; exit 0; fi
echo "borg: no lock in the repository (a cache lock cannot be listed)" >&2; exit 1`
	rosterScript = `cat -- "${BORG_REPO%/}/lock.roster"`
	rosterID     = "lock.roster"
)

// ListLocks implements plugin.LockLister: the holders' names in
// lock.exclusive/, and lock.roster when it names any holder.
func (*Plugin) ListLocks() []string { return []string{"sh", "-c", listScript} }

// ShowLock implements plugin.LockLister. A name in lock.exclusive/ says all
// there is (the file is empty), so only the roster is read.
func (*Plugin) ShowLock(id string) []string {
	if id == rosterID {
		return []string{"sh", "-c", rosterScript}
	}
	return []string{"true"}
}

// ParseLock implements plugin.LockLister.
func (*Plugin) ParseLock(id string, out []byte) (plugin.NativeLock, error) {
	if id == rosterID {
		return parseRoster(out)
	}
	host, pid, ok := splitHolder(id)
	if !ok {
		return plugin.NativeLock{}, fmt.Errorf("borg: lock holder %q is not <host id>.<pid>-<thread>", id)
	}
	return plugin.NativeLock{ID: id, Host: host, PID: pid, Exclusive: true}, nil
}

// splitHolder reads "<host id>.<pid>-<thread>"; the host id may hold dots.
func splitHolder(name string) (host string, pid int, ok bool) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 {
		return "", 0, false
	}
	p, _, ok := strings.Cut(name[i+1:], "-")
	n, err := strconv.Atoi(p)
	if !ok || err != nil || n <= 0 {
		return "", 0, false
	}
	return name[:i], n, true
}

// parseRoster describes lock.roster by its first holder, exclusive first.
func parseRoster(out []byte) (plugin.NativeLock, error) {
	var r struct {
		Exclusive [][]json.RawMessage `json:"exclusive"`
		Shared    [][]json.RawMessage `json:"shared"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return plugin.NativeLock{}, fmt.Errorf("borg: lock.roster: %w", err)
	}
	l := plugin.NativeLock{ID: rosterID}
	holders := r.Shared
	if len(r.Exclusive) > 0 {
		l.Exclusive, holders = true, r.Exclusive
	}
	if len(holders) > 0 && len(holders[0]) >= 2 {
		_ = json.Unmarshal(holders[0][0], &l.Host)
		_ = json.Unmarshal(holders[0][1], &l.PID)
	}
	return l, nil
}
