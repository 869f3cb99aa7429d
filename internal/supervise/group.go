//go:build linux

package supervise

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// groupAlive reports whether process group pgid may still have a running
// member. kill(-pgid, 0) alone counts zombies too; once the group was sent
// SIGKILL (killed), members can only be dying or zombies whose parent (a
// non-reaping init, say) will never reap them, so /proc is consulted and a
// group made only of zombies counts as gone. If /proc shows no member at all
// while kill says there is one, the members are hidden from us (hidepid,
// other users) and the group counts as alive.
func groupAlive(pgid int, killed bool) bool {
	if err := unix.Kill(-pgid, 0); err == syscall.ESRCH {
		return false
	}
	if !killed {
		return true
	}
	seen, live := scanGroup(pgid)
	return live || !seen
}

// scanGroup looks for members of pgid in /proc: seen when any is visible,
// live when one is not a zombie.
func scanGroup(pgid int) (seen, live bool) {
	dir, err := os.Open("/proc")
	if err != nil {
		return false, false
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return false, false
	}
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' {
			continue
		}
		state, pg, ok := procStat(n)
		if !ok || pg != pgid {
			continue
		}
		seen = true
		if state != 'Z' && state != 'X' {
			return true, true
		}
	}
	return seen, false
}

// procStat reads the state and process group of /proc/<pid>/stat.
func procStat(pid string) (state byte, pgid int, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name may contain anything, so parse after its last ')':
	// " S ppid pgrp ...".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pg, true
}
