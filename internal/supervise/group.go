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
	names, err := readProcNames()
	if err != nil {
		return false, false
	}
	for _, n := range names {
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
	state, _, pgid, ok = procStatAll(pid)
	return state, pgid, ok
}

// procStatAll reads the state, parent and process group of /proc/<pid>/stat.
func procStatAll(pid string) (state byte, ppid, pgid int, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name may contain anything, so parse after its last ')':
	// " S ppid pgrp ...".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, 0, false
	}
	pp, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, 0, 0, false
	}
	pg, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, 0, false
	}
	return f[0][0], pp, pg, true
}

// descendants lists the processes below root: its children, theirs, and so
// on. Processes fork and exit meanwhile, so the list is a snapshot; callers
// that must leave nothing behind repeat until root has no child left. It
// reads /proc/<pid>/task/<tid>/children and falls back to the parent pids
// of every /proc/<pid>/stat where the kernel lacks those files.
func descendants(root int) []int {
	if _, ok := childrenOf(root); !ok {
		byParent := parentMap()
		return walk(root, func(pid int) []int { return byParent[pid] })
	}
	return walk(root, func(pid int) []int {
		kids, _ := childrenOf(pid)
		return kids
	})
}

// walk lists the processes below root, breadth first, as children tells.
func walk(root int, children func(pid int) []int) []int {
	var out []int
	seen := map[int]bool{root: true}
	queue := children(root)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		out = append(out, pid)
		queue = append(queue, children(pid)...)
	}
	return out
}

// childrenOf reads the children of every thread of pid; ok is false when
// the kernel has no children files (CONFIG_PROC_CHILDREN unset).
func childrenOf(pid int) (kids []int, ok bool) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, true // gone: no children
	}
	ok = true
	for _, t := range tasks {
		b, err := os.ReadFile(dir + t.Name() + "/children")
		if err != nil {
			if os.IsNotExist(err) && exists(dir+t.Name()) {
				ok = false
			}
			continue
		}
		for _, f := range bytes.Fields(b) {
			if n, err := strconv.Atoi(string(f)); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids, ok
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// parentMap maps each parent pid to its children, from every /proc/<pid>/stat.
func parentMap() map[int][]int {
	names, err := readProcNames()
	if err != nil {
		return nil
	}
	byParent := map[int][]int{}
	for _, n := range names {
		if _, ppid, _, ok := procStatAll(n); ok {
			pid, _ := strconv.Atoi(n)
			byParent[ppid] = append(byParent[ppid], pid)
		}
	}
	return byParent
}

// readProcNames lists the numeric entries of /proc.
func readProcNames() ([]string, error) {
	dir, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := names[:0]
	for _, n := range names {
		if n != "" && n[0] >= '0' && n[0] <= '9' {
			pids = append(pids, n)
		}
	}
	return pids, nil
}
