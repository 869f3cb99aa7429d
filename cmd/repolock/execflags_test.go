package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/repolock/repolock/internal/config"
	"github.com/repolock/repolock/internal/plan"
)

// Issue 15, as the command line gives it: `exec -repository X -ttl 1m`
// lays only the flags given over the config's lock block, so the config's
// renew_interval and margin stay.
func TestExecFlagsKeepConfiguredTiming(t *testing.T) {
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
`), "flags.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg, diags := plan.New(loaded)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := &execFlags{set: map[string]bool{}}
	f.register(fs)
	if err := fs.Parse([]string{"-repository", "X", "-mode", "exclusive", "-ttl", "1m", "--", "true"}); err != nil {
		t.Fatal(err)
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	e, err := f.plan(fs.Args())
	if err != nil {
		t.Fatal(err)
	}
	e.Config = cfg
	spec, err := e.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Timing; got.TTL != time.Minute || got.RenewInterval != 5*time.Second || got.Margin != 2*time.Second || got.KillTimeout != 10*time.Second {
		t.Fatalf("timing = %+v; want ttl 1m from -ttl, renew_interval 5s and margin 2s from the config, kill_timeout 10s", got)
	}
	if spec.Wait != time.Hour || spec.KillSignal != config.DefaultLock().KillSignal {
		t.Errorf("wait %s, kill signal %v: want the defaults, which no flag was given for", spec.Wait, spec.KillSignal)
	}
}
