package plan

import (
	"testing"
	"time"

	"github.com/repolock/repolock/internal/config"
)

// Issue 15: `repolock exec -repository X -ttl 1m` keeps the renew_interval
// and margin the config sets explicitly; only what no layer sets follows
// the flag's ttl.
func TestExecTTLFlagKeepsConfiguredTiming(t *testing.T) {
	loaded, _, diags := config.LoadSource([]byte(`
lock {
  ttl            = "30s"
  renew_interval = "5s"
  margin         = "2s"
}
repository "X" {
  tool     = "exec"
  location = "x"
}
`), "ttl-flag.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg, diags := New(loaded)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ttl := time.Minute
	spec, err := Exec{Repository: "X", Config: cfg, Args: []string{"true"}, Mode: "exclusive",
		Lock: config.LockSettings{TTL: &ttl}}.Plan()
	if err != nil {
		t.Fatal(err)
	}
	got := spec.Timing
	if got.TTL != time.Minute || got.RenewInterval != 5*time.Second || got.Margin != 2*time.Second || got.KillTimeout != 10*time.Second {
		t.Fatalf("timing = %+v; want ttl 1m from the flag, renew_interval 5s and margin 2s from the config, kill_timeout 10s (default)", got)
	}
}
