// Package hooks runs the commands a config attaches to a run's events
// (start, success, failure, lost, busy) for healthchecks.io, ntfy, Slack
// webhooks and the like. A hook is bounded by its timeout (its whole
// process group is killed then), gets a clean environment (PATH, the run's
// REPOLOCK_* variables and its own env: no secret of repolock's or the
// backup's), and its failure is logged, never returned: a hook never
// changes a run's exit code.
package hooks

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Events a hook can be attached to.
const (
	Start   = "start"
	Success = "success"
	Failure = "failure"
	Lost    = "lost"
	Busy    = "busy"
)

// Events lists every event.
func Events() []string { return []string{Start, Success, Failure, Lost, Busy} }

// DefaultTimeout bounds a hook without its own timeout.
const DefaultTimeout = 30 * time.Second

// Hook is one configured hook.
type Hook struct {
	Name    string
	On      []string
	Command []string
	Env     map[string]string
	Timeout time.Duration
}

// Run runs, one after the other, every hook attached to event, with vars
// (KEY=VALUE: the run's REPOLOCK_* variables) in their environment.
func Run(hooks []Hook, event string, vars []string, log hclog.Logger) {
	for _, h := range hooks {
		if !slices.Contains(h.On, event) {
			continue
		}
		if err := runOne(h, event, vars); err != nil {
			log.Warn("hook failed; the run's exit code is unchanged", "hook", h.Name, "event", event, "error", err)
		} else {
			log.Debug("hook ran", "hook", h.Name, "event", event)
		}
	}
}

func runOne(h Hook, event string, vars []string) error {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Command[0], h.Command[1:]...)
	env := []string{"PATH=" + os.Getenv("PATH"), "REPOLOCK_EVENT=" + event}
	env = append(env, vars...)
	for k, v := range h.Env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	// Its own group, so that a timeout kills what it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errors.New("killed at its timeout of " + timeout.String())
	}
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return errors.New(err.Error() + ": " + msg)
	}
	return nil
}
