package consullock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Sentinel errors. Callers map them to exit codes with errors.Is / errors.As.
var (
	// ErrLost is the cause of a lock context cancelled because the lock can
	// no longer be proven; the concrete reason wraps it.
	ErrLost = errors.New("consullock: lock lost")
	// ErrTimeout means the lock was not granted within Config.Wait.
	ErrTimeout = errors.New("consullock: lock not acquired within wait")
	// ErrReleased is the cause of a lock context ended by Release.
	ErrReleased = errors.New("consullock: lock released")
)

// UnreachableError means Consul did not answer (connection refused, timeout,
// DNS, TLS): nothing was written.
type UnreachableError struct {
	Op  string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("consullock: Consul unreachable (%s): %v%s", e.Op, e.Err, connLimitHint(e.Err))
}

// connLimitHint explains Consul's 429: the agent's limit of HTTP
// connections per client address is reached. Every waiting or holding
// repolock keeps two open (its requests and a blocking query).
func connLimitHint(err error) string {
	var se api.StatusError
	if (errors.As(err, &se) && se.Code == 429) || (err != nil && strings.Contains(err.Error(), "response code: 429")) {
		return "; the agent refuses more HTTP connections from this address: raise its limits.http_max_conns_per_client " +
			"(default 200) above twice the number of repolock processes behind one address"
	}
	return ""
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// PermissionError means Consul's ACL system refused the request. Need names
// the permission the token lacks.
type PermissionError struct {
	Op     string
	Need   string
	Detail string
}

func (e *PermissionError) Error() string {
	msg := fmt.Sprintf("consullock: Consul ACL denied %s: the token needs %s", e.Op, e.Need)
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// lostError carries the reason of a loss and matches ErrLost. unreachable
// marks a loss by the local deadline: Consul did not confirm a renewal;
// denied, a renewal the ACLs refused.
type lostError struct {
	reason      string
	unreachable bool
	denied      *PermissionError // the ACLs refused the renewal
}

func (e *lostError) Error() string        { return "consullock: lock lost: " + e.reason }
func (e *lostError) Is(target error) bool { return target == ErrLost }

func lost(format string, args ...any) error { return &lostError{reason: fmt.Sprintf(format, args...)} }

// classify turns a consul/api error into an UnreachableError or a
// PermissionError where it is one, so that callers see what went wrong.
func classify(op, need string, err error) error {
	if err == nil {
		return nil
	}
	var se api.StatusError
	if errors.As(err, &se) && se.Code == 403 {
		return &PermissionError{Op: op, Need: need, Detail: strings.TrimSpace(se.Body)}
	}
	if strings.Contains(err.Error(), "response code: 403") ||
		strings.Contains(strings.ToLower(err.Error()), "permission denied") {
		return &PermissionError{Op: op, Need: need, Detail: strings.TrimSpace(err.Error())}
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || connLimitHint(err) != "" {
		return &UnreachableError{Op: op, Err: err}
	}
	return fmt.Errorf("consullock: %s: %w", op, err)
}
