package plan

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/config"
	"github.com/repolock/repolock/internal/run"
	"github.com/repolock/repolock/internal/timing"
	"github.com/repolock/repolock/plugin"
)

// Overrides are lock settings given as flags; nil fields were not given.
type Overrides struct {
	Wait, TTL, KillTimeout, RenewInterval, Margin *time.Duration
	KillSignal                                    *syscall.Signal
}

// Apply lays the overrides over lk and validates the result.
// RenewInterval and Margin follow a changed TTL unless given too.
func (o Overrides) Apply(lk config.Lock) (config.Lock, error) {
	set := func(dst *time.Duration, v *time.Duration) {
		if v != nil {
			*dst = *v
		}
	}
	if o.TTL != nil {
		lk.Lease = timing.LeaseFor(*o.TTL)
	}
	set(&lk.Wait, o.Wait)
	set(&lk.KillTimeout, o.KillTimeout)
	set(&lk.RenewInterval, o.RenewInterval)
	set(&lk.Margin, o.Margin)
	if o.KillSignal != nil {
		lk.KillSignal = *o.KillSignal
	}
	return lk, lk.Validate()
}

// Exec is `repolock exec`: a command under a plain key, or under a
// configured repository's lock.
type Exec struct {
	Key        string         // -key, or
	Repository string         // -repository, from Config
	Config     *config.Config // the loaded config; may be nil with Key
	Args       []string
	Mode       string // -mode, "" to infer (with Repository) or exclusive (with Key)
	// Prefix and SessionNode from flags; "" takes the config's, then the default.
	Prefix, SessionNode string
	Overrides           Overrides
}

// Plan turns e into a run.Spec. Its errors are usage errors: the command
// line names a bad key, a conflicting repository or bad settings.
func (e Exec) Plan() (run.Spec, error) {
	switch {
	case len(e.Args) == 0:
		return run.Spec{}, errors.New("no command given (repolock exec -key KEY -- CMD ARGS…)")
	case e.Key == "" && e.Repository == "":
		return run.Spec{}, errors.New("-key is required (or -repository NAME with a config)")
	case e.Key != "" && e.Repository != "":
		return run.Spec{}, errors.New("give -key or -repository, not both")
	}
	if e.Mode != "" {
		if _, err := consullock.ParseMode(e.Mode); err != nil {
			return run.Spec{}, fmt.Errorf("-mode: %w", err)
		}
	}
	cfg := e.Config
	if cfg == nil {
		cfg = &config.Config{Lock: config.DefaultLock()}
	}
	lk, err := e.Overrides.Apply(cfg.Lock)
	if err != nil {
		return run.Spec{}, err
	}
	prefix, node := first(e.Prefix, cfg.Consul.Prefix), first(e.SessionNode, cfg.Consul.SessionNode)
	if e.Key != "" {
		return e.keySpec(prefix, node, lk)
	}
	r, ok := cfg.Repository(e.Repository)
	if !ok {
		return run.Spec{}, fmt.Errorf("-repository: no repository %q in %s", e.Repository, cfg.Filename)
	}
	repo, err := Resolve(cfg, r)
	if err != nil {
		return run.Spec{}, err
	}
	cmd, diags := command(cfg, repo, e.Args, e.Mode, "")
	if diags.HasErrors() {
		var d *hcl.Diagnostic
		for _, d = range diags {
			if d.Severity == hcl.DiagError {
				break
			}
		}
		if d.Summary == summaryMode {
			return run.Spec{}, fmt.Errorf("%s (use -mode)", d.Detail)
		}
		return run.Spec{}, fmt.Errorf("%s: %s", d.Summary, d.Detail)
	}
	spec := cmd.spec(prefix, node, lk)
	spec.Env = Environment(os.Environ(), repo.Plugin, r.Env, nil, cmd.toolEnv)
	return spec, nil
}

// keySpec is a command under a plain key: nothing is known of the tool.
func (e Exec) keySpec(prefix, node string, lk config.Lock) (run.Spec, error) {
	if err := consullock.CheckKey(e.Key); err != nil {
		return run.Spec{}, fmt.Errorf("-key: %w", err)
	}
	mode := consullock.Exclusive
	if e.Mode != "" {
		mode = consullock.Mode(e.Mode)
	}
	p, err := plugin.Get("exec")
	if err != nil {
		return run.Spec{}, err
	}
	cmd := planned{args: e.Args, mode: mode, primary: Repo{Config: &config.Repository{Name: e.Key, UnlockNative: plugin.UnlockNever}, Plugin: p, Key: e.Key}}
	spec := cmd.spec(prefix, node, lk)
	spec.Env = Environment(os.Environ(), nil, nil, nil, nil)
	return spec, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
