package consullock

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

// Consul's 429 (the agent's per-address connection limit) is retried as
// unreachable and named with the setting to raise.
func TestConnLimitHint(t *testing.T) {
	for _, err := range []error{
		api.StatusError{Code: 429, Body: "Your IP is issuing too many concurrent connections"},
		errors.New("Unexpected response code: 429 (Your IP is issuing too many concurrent connections, please rate limit your calls)"),
	} {
		c := classify("create session", "session:write", err)
		var ue *UnreachableError
		if !errors.As(c, &ue) || !retryable(c) || !strings.Contains(c.Error(), "limits.http_max_conns_per_client") {
			t.Errorf("%v classified as %T %q", err, c, c)
		}
	}
	if h := connLimitHint(errors.New("Unexpected response code: 500")); h != "" {
		t.Errorf("a 500 got the connection-limit hint %q", h)
	}
}

// Consul's answers are told apart by their HTTP status, typed or (only
// Session.Renew) untyped.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{api.StatusError{Code: 403, Body: "ACL not found"}, "denied"},
		{fmt.Errorf("wrapped: %w", api.StatusError{Code: 403}), "denied"},
		{errors.New("Unexpected response code: 403"), "denied"}, // Session.Renew
		{api.StatusError{Code: 429}, "unreachable"},
		{api.StatusError{Code: 500, Body: "No cluster leader"}, "unreachable"},
		{errors.New("Unexpected response code: 503"), "unreachable"},
		{&url.Error{Op: "Get", URL: "http://x", Err: errors.New("connection refused")}, "unreachable"},
		{context.DeadlineExceeded, "unreachable"},
		{api.StatusError{Code: 400, Body: "Client sent an HTTP request to an HTTPS server.\n"}, "refused"},
		{api.StatusError{Code: 400, Body: "Bad request"}, "other"},
		{&url.Error{Op: "Put", URL: "https://x", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, "refused"},
		{&url.Error{Op: "Put", URL: "https://x", Err: &tls.CertificateVerificationError{Err: x509.HostnameError{Host: "x"}}}, "refused"},
		{&url.Error{Op: "Put", URL: "https://x", Err: &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}}, "refused"},
		{&url.Error{Op: "Put", URL: "https://x", Err: tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}}, "refused"},
		{&url.Error{Op: "Put", URL: "https://x", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, "unreachable"},
		{api.StatusError{Code: 500, Body: "rpc error making call: apply failed: Missing node registration"}, "unreachable"}, // final only for a session create
		{errors.New("permission denied: the word alone decides nothing"), "other"},
		{errors.New("Unexpected response code: abc"), "other"},
	} {
		err := classify("op", "need", c.err)
		var pe *PermissionError
		var ue *UnreachableError
		var re *RefusedError
		got := "other"
		switch {
		case errors.As(err, &pe):
			got = "denied"
		case errors.As(err, &re):
			got = "refused"
		case errors.As(err, &ue):
			got = "unreachable"
		}
		if got != c.want {
			t.Errorf("classify(%v) is %s (%v), want %s", c.err, got, err, c.want)
		}
	}
	if !retryable(api.StatusError{Code: 502}) || retryable(api.StatusError{Code: 403}) || retryable(api.StatusError{Code: 400}) {
		t.Error("retryable: 5xx retries, 403 and 400 do not")
	}
	for _, body := range []string{"rpc error making call: apply failed: Missing node registration", "cross datacenter lock must be created at server agent"} {
		if err := refusedSession("repolock", "dc1", api.StatusError{Code: 500, Body: body}); retryable(err) || !errors.As(err, new(*RefusedError)) {
			t.Errorf("session create answered %q: %v, want a final RefusedError", body, err)
		}
	}
	if err := refusedSession("repolock", "dc1", api.StatusError{Code: 500, Body: "No cluster leader"}); !retryable(err) {
		t.Errorf("session create without a leader: %v is final, want a retry", err)
	}
}
