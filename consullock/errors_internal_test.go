package consullock

import (
	"errors"
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
