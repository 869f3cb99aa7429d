package testcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// MainWithRepolock is the TestMain of a package whose tests run the
// repolock binary: it builds the current source into a temporary directory,
// sets *binary, runs the tests and exits with their code.
func MainWithRepolock(m *testing.M, binary *string) {
	dir, err := os.MkdirTemp("", "repolock-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*binary = filepath.Join(dir, "repolock")
	build := exec.Command("go", "build", "-o", *binary, "github.com/repolock/repolock/cmd/repolock")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building repolock for the tests:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// CleanEnv is the test's environment without Consul or repolock settings,
// so that every repolock a test starts talks only to the agent it is given.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSUL_") && !strings.HasPrefix(kv, "REPOLOCK_") {
			env = append(env, kv)
		}
	}
	return env
}
