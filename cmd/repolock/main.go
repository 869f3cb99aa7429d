// Command repolock runs a backup command under a fenced Consul lock.
//
// This file is the one place where errors become exit codes (see exitCode).
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/repolock/repolock/internal/exitcode"
	"github.com/repolock/repolock/internal/run"
	"github.com/repolock/repolock/internal/supervise"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// forwardedSignals reach the command's whole process group.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP,
	syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

func main() {
	supervise.MaybeRunGuard()
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func usagef(format string, args ...any) error {
	return &run.UsageError{Msg: fmt.Sprintf(format, args...)}
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return exitcode.Usage
	}
	var err error
	switch args[0] {
	case "exec":
		err = cmdExec(args[1:], stderr)
	case "run":
		err = cmdRun(args[1:], stderr)
	case "validate":
		err = cmdValidate(args[1:], stdout, stderr)
	case "status":
		err = cmdStatus(args[1:], stdout, stderr)
	case "break":
		err = cmdBreak(args[1:], stdout, stderr)
	case "acl-policy":
		err = cmdACLPolicy(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "repolock %s\n", version)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, topUsage)
	default:
		err = usagef("unknown command %q", args[0])
	}
	o := run.Of(err)
	if o.Err != nil {
		fmt.Fprintf(stderr, "repolock: %v\n", err)
		if o.Kind == run.Usage {
			fmt.Fprintln(stderr, "run 'repolock help' for usage")
		}
	}
	return o.Code
}

const topUsage = `Usage: repolock <command> [flags]

Commands:
  run [-config FILE] JOB               run a job of the config under its repository's lock
  validate [-config FILE] [-json]      check the config; show each repository's lock key and each job's mode
  exec -key KEY [flags] -- CMD ARGS…   run CMD under the lock KEY
  exec -repository NAME [flags] -- CMD ARGS…
                                       run CMD under a configured repository's lock
  status [-json] [REPOSITORY|KEY]      holders, waiters and last run per lock
  break REPOSITORY|KEY                 operator force-release: destroy every session of the lock
  acl-policy [-config FILE] [REPOSITORY…]
                                       print the least Consul ACL policy for these repositories
  version                              print the version

Consul is reached through the standard CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
CONSUL_HTTP_TOKEN_FILE, CONSUL_CACERT, … environment variables.
Run 'repolock <command> -h' for the flags of a command.
`

// newLogger builds the go-hclog logger every command uses (on stderr, so a
// command's stdout stays its own).
func newLogger(level string, jsonFormat bool, w io.Writer) (hclog.Logger, error) {
	lvl := hclog.LevelFromString(level)
	if lvl == hclog.NoLevel {
		return nil, usagef("-log-level %q: want trace, debug, info, warn or error", level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: "repolock", Level: lvl, JSONFormat: jsonFormat, Output: w}), nil
}

// notifySignals starts catching the signals that are forwarded to the
// command, before anything is started, so none is lost in between.
func notifySignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, forwardedSignals...)
	return ch, func() { signal.Stop(ch) }
}
