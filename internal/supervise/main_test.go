//go:build linux

package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv selects a helper role when the test binary re-executes itself.
const helperEnv = "SUPERVISE_TEST_HELPER"

func TestMain(m *testing.M) {
	MaybeRunGuard()
	if _, ok := os.LookupEnv("GORACE"); !ok {
		// Race-enabled binaries sleep 1s at exit by default; every guard
		// and helper would.
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role))
	}
	os.Exit(m.Run())
}

func runHelper(role string) int {
	dir := os.Getenv("SUPERVISE_TEST_DIR")
	switch role {
	case "r-killed":
		// A repolock stand-in that the test SIGKILLs while its command runs.
		p, err := Start(Spec{
			Path: "/bin/sh",
			Args: []string{"sh", "-c", `echo $$ > "$D/pid.tmp" && mv "$D/pid.tmp" "$D/pid"; ` +
				`sleep 1000 & echo $! > "$D/gpid.tmp" && mv "$D/gpid.tmp" "$D/gpid"; ` +
				// One that left the group: only the guard's descendant kill finds it.
				`setsid sh -c 'echo $$ > "$D/spid.tmp" && mv "$D/spid.tmp" "$D/spid"; exec sleep 1000' & wait`},
			Env:         []string{"D=" + dir, "PATH=" + os.Getenv("PATH")},
			KillTimeout: testKillTimeout,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		<-p.Done()
		return 0
	case "epipe":
		// Stdout is a pipe without reader: after Start, writing to it must
		// fail with EPIPE instead of killing this process.
		p, err := Start(Spec{Path: "/bin/true"})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		<-p.Done()
		_, err = os.Stdout.WriteString("into a closed pipe\n")
		if errors.Is(err, syscall.EPIPE) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "write to closed stdout: %v\n", err)
		return 2
	case "count-term":
		// A command that logs every SIGTERM it receives, then exits 0
		// half a second after the first, time for a duplicate to arrive.
		term := make(chan os.Signal, 8)
		signal.Notify(term, syscall.SIGTERM)
		if os.WriteFile(filepath.Join(dir, "ready"), []byte("1\n"), 0o644) != nil {
			return 1
		}
		<-term
		n := 1
		for end, waiting := time.After(500*time.Millisecond), true; waiting; {
			select {
			case <-term:
				n++
			case <-end:
				waiting = false
			}
		}
		if os.WriteFile(filepath.Join(dir, "terms"), []byte(strconv.Itoa(n)+"\n"), 0o644) != nil {
			return 1
		}
		return 0
	case "printenv":
		// A command that reports its exact environment.
		env := os.Environ()
		slices.Sort(env)
		err := os.WriteFile(os.Getenv("OUT"), []byte(strings.Join(env, "\x00")), 0o644)
		if err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper role %q\n", role)
	return 1
}
