package consullock

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
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
	if answer(err) == statusTooMany {
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

// Classes of Consul's answers that are not a success, by HTTP status.
type answerClass int

const (
	noAnswer      answerClass = iota // no HTTP answer: refused, timeout, DNS, TLS
	statusDenied                     // 403: the ACLs refused
	statusTooMany                    // 429: the agent's per-client connection limit
	statusServer                     // 5xx: no leader, an RPC error, a server restarting
	statusOther                      // any other status (400, 404, …): the request itself is wrong
)

// answer is the one place a Consul error is told apart by its HTTP status
// (consul/api's StatusError), never by its message. consul/api's
// Session.Renew alone returns the status untyped, as
// "Unexpected response code: N"; statusOf reads that code.
func answer(err error) answerClass {
	code := statusOf(err)
	switch {
	case code == 0:
		return noAnswer
	case code == 403:
		return statusDenied
	case code == 429:
		return statusTooMany
	case code >= 500:
		return statusServer
	}
	return statusOther
}

// renewStatus is how consul/api's Session.Renew words a status it does
// not expect (session.go), the one consul/api error without a StatusError.
const renewStatus = "Unexpected response code: "

// statusOf is the HTTP status of a Consul answer that was not a success,
// 0 when Consul did not answer.
func statusOf(err error) int {
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	if err == nil {
		return 0
	}
	msg := err.Error()
	i := strings.LastIndex(msg, renewStatus)
	if i < 0 {
		return 0
	}
	digits := msg[i+len(renewStatus):]
	if j := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
		digits = digits[:j]
	}
	code, convErr := strconv.Atoi(digits)
	if convErr != nil {
		return 0
	}
	return code
}

// classify turns a consul/api error into a *PermissionError (403) or an
// *UnreachableError (no answer, 429, 5xx: what waiting may heal), so that
// callers see what went wrong; other answers are wrapped as they are.
// need names the permission a 403 means the token lacks.
func classify(op, need string, err error) error {
	if err == nil || errors.As(err, new(*RefusedError)) {
		return err
	}
	switch answer(err) {
	case statusDenied:
		detail := err.Error()
		var se api.StatusError
		if errors.As(err, &se) {
			detail = se.Body
		}
		return &PermissionError{Op: op, Need: need, Detail: strings.TrimSpace(detail)}
	case statusTooMany, statusServer:
		return &UnreachableError{Op: op, Err: err}
	case noAnswer:
		if hint := tlsHint(err); hint != "" {
			return &RefusedError{Op: op, Err: err, Hint: hint}
		}
		var ue *url.Error
		var ne net.Error
		if errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
			return &UnreachableError{Op: op, Err: err}
		}
	case statusOther:
		var se api.StatusError
		if errors.As(err, &se) && strings.Contains(se.Body, plainToTLS) {
			return &RefusedError{Op: op, Err: err, Hint: "the agent speaks HTTPS at this address: write it as https://… in CONSUL_HTTP_ADDR or consul.address"}
		}
	}
	return fmt.Errorf("consullock: %s: %w", op, err)
}

// plainToTLS is how Go's HTTP server (Consul's) answers a plain HTTP
// request on its HTTPS port, with a 400.
const plainToTLS = "Client sent an HTTP request to an HTTPS server"

// tlsHint names the setting to fix for a TLS failure, which waiting
// cannot heal: the agent's certificate not verified, the agent refusing
// repolock's (a TLS alert: missing, expired, or from another CA), or TLS
// spoken to a plain HTTP port. "" for any other error.
func tlsHint(err error) string {
	var verify *tls.CertificateVerificationError
	var remote *net.OpError
	var header tls.RecordHeaderError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &host):
		return "the agent's certificate does not name the address repolock dials: set CONSUL_TLS_SERVER_NAME or consul.tls_server_name to a name it has (Consul's are server.<datacenter>.<domain>)"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the agent's certificate has expired, or the clock is wrong: renew it on the agent"
	case errors.As(err, &verify):
		return "the agent's certificate is not signed by a CA repolock trusts: check CONSUL_CACERT / CONSUL_CAPATH or consul.ca_file / ca_path"
	// crypto/tls reports an alert the agent sent as a net.OpError whose
	// Op is "remote error" (conn.go): a TLS verdict, not a network fault.
	case errors.As(err, &remote) && remote.Op == "remote error":
		return fmt.Sprintf("the agent refused repolock's TLS handshake (%v): check the client certificate (CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY, or consul.cert_file and key_file): missing, expired or not signed by the agent's CA", remote.Err)
	case errors.As(err, &header):
		return "the agent speaks plain HTTP at this address: write it as http://… (or drop the scheme) in CONSUL_HTTP_ADDR or consul.address"
	}
	return ""
}

// Classify is classify for other packages that read or write under a
// lock's KV folder (the run history): need names the ACL permission.
func Classify(op, need string, err error) error { return classify(op, need, err) }

// RefusedError means Consul answered, and waiting will not change its
// answer: a retry within Config.Wait would only repeat it for hours. Hint
// names the setting to look at.
type RefusedError struct {
	Op   string
	Err  error
	Hint string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("consullock: Consul refused %s: %v; waiting will not change that: %s", e.Op, e.Err, e.Hint)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Consul's words for the session creates that fail as a 500, like a lost
// leader, but never heal: only their text tells them apart. These and
// renewStatus are the only answers read by their text.
const (
	// A client agent asked for a session in another datacenter
	// (agent/session_endpoint.go): only a server agent forwards that.
	crossDCClient = "cross datacenter lock must be created at server agent"
	// The session's node is not in the catalog of the session's
	// datacenter (structs.ErrMissingNode).
	missingNode = "Missing node registration"
	// The TTL is outside [session_ttl_min, 24h] (agent/session_endpoint.go).
	invalidTTL = "Invalid Session TTL"
)

// refusedSession turns a session create that Consul failed with one of
// the answers above into a *RefusedError; any other error is returned as
// it is.
func refusedSession(node, dc string, err error) error {
	var se api.StatusError
	if !errors.As(err, &se) || se.Code < 500 {
		return err
	}
	where := "the agent's own datacenter"
	if dc != "" {
		where = "datacenter " + strconv.Quote(dc)
	}
	switch {
	case strings.Contains(se.Body, crossDCClient):
		return &RefusedError{Op: "create session", Err: err,
			Hint: fmt.Sprintf("Consul creates a session in another datacenter (%s) only through a server agent (consul#6828): "+
				"set consul.session_address (exec: -session-address) to a server agent's HTTP address, or point the address at one", where)}
	case strings.Contains(se.Body, invalidTTL):
		return &RefusedError{Op: "create session", Err: err,
			Hint: "the agent refuses this session TTL: Consul accepts from its session_ttl_min (10s by default) to 24h; raise ttl (exec: -ttl), or lower the servers' session_ttl_min"}
	case strings.Contains(se.Body, missingNode):
		return &RefusedError{Op: "create session", Err: err,
			Hint: fmt.Sprintf("the session node %q is missing from the catalog of the datacenter the session was asked of, though it was registered in %s; check consul.datacenter and that nothing deregisters the node", node, where)}
	}
	return err
}

// DatacenterError means the configured datacenter is not one the agent
// knows (catalog/datacenters): a typo, or a datacenter not WAN-joined.
type DatacenterError struct {
	Name  string
	Known []string
}

func (e *DatacenterError) Error() string {
	return fmt.Sprintf("datacenter %q (consul.datacenter, or exec -datacenter) is not one this Consul agent knows (it knows %s): check the name, and that its servers are WAN-joined",
		e.Name, strings.Join(e.Known, ", "))
}

// Datacenter checks that dc is among the datacenters the agent knows and
// returns the one the locks live in: dc, or the agent's own when dc is
// empty ("" when the agent does not say: agent:read is not in the
// documented policy). An agent that does not answer within ctx is no error
// here: the requests that follow retry or report it.
func Datacenter(ctx context.Context, c *api.Client, dc string) (string, error) {
	opts := (&api.QueryOptions{}).WithContext(ctx)
	if dc == "" {
		var self struct{ Config struct{ Datacenter string } }
		if _, err := c.Raw().Query("/v1/agent/self", &self, opts); err != nil {
			return "", nil
		}
		return self.Config.Datacenter, nil
	}
	var known []string
	if _, err := c.Raw().Query("/v1/catalog/datacenters", &known, opts); err != nil {
		return dc, nil
	}
	if slices.Contains(known, dc) {
		return dc, nil
	}
	return "", &DatacenterError{Name: dc, Known: known}
}
