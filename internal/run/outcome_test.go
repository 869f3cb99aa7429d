package run

import (
	"errors"
	"flag"
	"fmt"
	"syscall"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/hooks"
	"github.com/repolock/repolock/internal/metrics"
	"github.com/repolock/repolock/internal/supervise"
)

// Every kind of error, wrapped as callers wrap them, maps to one outcome
// whose exit code, metrics outcome, hook event and class agree.
func TestOf(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("acquire lock %q: %w", "k", err) }
	cases := []struct {
		name   string
		err    error
		kind   Kind
		code   int
		metric string
		event  string
		class  string
	}{
		{"success", nil, Success, 0, metrics.Success, hooks.Success, "success"},
		{"help", flag.ErrHelp, Success, 0, metrics.Success, hooks.Success, "success"},
		{"skipped", ErrSkipped, Skipped, 0, metrics.Busy, hooks.Busy, "skipped"},
		{"failure", &ChildExitError{Code: 11, Class: "native lock busy"}, Failure, 11, metrics.Failure, hooks.Failure, "native lock busy"},
		{"killed", &ChildExitError{Code: 137, Class: "killed by SIGKILL"}, Failure, 137, metrics.Failure, hooks.Failure, "killed by SIGKILL"},
		{"not found", &supervise.ExecError{Code: 127, Cmd: "nope"}, Failure, 127, metrics.Failure, hooks.Failure, "failure"},
		{"busy", wrap(consullock.ErrTimeout), Busy, 75, metrics.Busy, hooks.Busy, "busy"},
		{"broken while waiting", wrap(consullock.ErrLost), Busy, 75, metrics.Busy, hooks.Busy, "busy"},
		{"lost", &LockLostError{Cause: consullock.ErrLost}, Lost, 76, metrics.Lost, hooks.Lost, "lock lost"},
		{"interrupted", &InterruptedError{Signal: syscall.SIGTERM}, Interrupted, 143, metrics.Interrupted, hooks.Failure, "interrupted"},
		{"usage", &UsageError{Msg: "-key is required"}, Usage, 64, metrics.Config, hooks.Failure, "usage"},
		{"config", &ConfigError{Msg: "invalid"}, Config, 78, metrics.Config, hooks.Failure, "config"},
		{"guard died", &UnknownStateError{Err: errors.New("gone")}, Unknown, 70, metrics.Failure, hooks.Failure, "unknown"},
		{"unreachable", wrap(&consullock.UnreachableError{Op: "create session", Err: errors.New("refused")}), Unreachable, 69, metrics.Failure, hooks.Failure, "unreachable"},
		{"consul status", api.StatusError{Code: 500, Body: "no leader"}, Unreachable, 69, metrics.Failure, hooks.Failure, "unreachable"},
		// A waiter whose session lapsed while Consul was unreachable: the
		// loss is inside, but the wait ended for want of Consul.
		{"lapsed while waiting", wrap(&consullock.UnreachableError{Op: "renew session while waiting", Err: fmt.Errorf("%w: no renewal", consullock.ErrLost)}), Unreachable, 69, metrics.Failure, hooks.Failure, "unreachable"},
		{"denied", wrap(&consullock.PermissionError{Op: "create session", Need: "session:write"}), Denied, 77, metrics.Failure, hooks.Failure, "denied"},
		// Answers waiting cannot change (TLS, a session in another
		// datacenter from a client agent): as unusable as no answer.
		{"refused", wrap(&consullock.RefusedError{Op: "create session", Err: api.StatusError{Code: 500, Body: "Missing node registration"}, Hint: "consul.datacenter"}), Unreachable, 69, metrics.Failure, hooks.Failure, "unreachable"},
		{"unknown datacenter", &consullock.DatacenterError{Name: "dc9", Known: []string{"dc1"}}, Config, 78, metrics.Config, hooks.Failure, "config"},
		{"stale", &StaleError{N: 2}, Stale, 1, metrics.Failure, hooks.Failure, "stale"},
		{"unclassified", errors.New("disk on fire"), Internal, 71, metrics.Failure, hooks.Failure, "internal"},
	}
	for _, c := range cases {
		o := Of(c.err)
		if o.Kind != c.kind || o.Code != c.code || o.Metric() != c.metric || o.Event() != c.event || o.Class != c.class {
			t.Errorf("%s: Of = %s, metric %s, event %s, class %q; want %s (exit %d), %s, %s, %q",
				c.name, o, o.Metric(), o.Event(), o.Class, c.kind, c.code, c.metric, c.event, c.class)
		}
		if (o.Err == nil) != (c.kind == Success) || (c.err != nil && c.kind != Success && o.Line() == "") {
			t.Errorf("%s: Err %v, Line %q", c.name, o.Err, o.Line())
		}
	}
	if o := Of(&ChildExitError{Code: 1}).Interrupted("SIGTERM"); o.Kind != Interrupted || o.Code != 1 || o.Metric() != metrics.Interrupted {
		t.Errorf("a failure after a forwarded stop: %s, metric %s", o, o.Metric())
	}
	if o := Of(nil).Interrupted("SIGTERM"); o.Kind != Success {
		t.Errorf("Interrupted changed a success: %s", o)
	}
	if got := Of(errors.New("two\n  lines")).Line(); got != "two lines" {
		t.Errorf("Line = %q", got)
	}
}
