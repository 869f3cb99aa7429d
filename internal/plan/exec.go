package plan

import (
	"cmp"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/config"
	"github.com/repolock/repolock/internal/run"
	"github.com/repolock/repolock/plugin"
)

// Exec is `repolock exec`: a command under a plain key, or under a
// configured repository's lock.
type Exec struct {
	Key        string  // -key, or
	Repository string  // -repository, from Config
	Config     *Config // the loaded config; may be nil with Key
	Args       []string
	Mode       string // -mode, "" to infer (with Repository) or exclusive (with Key)
	// Slots (-slots) caps the key's shared holders: a semaphore, the
	// `consul lock -n` replacement. Only with Key; it implies shared.
	Slots int
	// Prefix and SessionNode from flags; "" takes the config's, then the default.
	Prefix, SessionNode string
	// Lock is the lock settings given as flags: the top layer, over the
	// config's top-level lock block (with Repository) and the defaults.
	Lock config.LockSettings
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
	if e.Prefix != "" {
		if err := config.CheckPrefix(e.Prefix); err != nil {
			return run.Spec{}, fmt.Errorf("-prefix: %w", err)
		}
	}
	if e.SessionNode != "" {
		if err := config.CheckSessionNode(e.SessionNode); err != nil {
			return run.Spec{}, fmt.Errorf("-session-node: %w", err)
		}
	}
	if e.Slots != 0 {
		if e.Key == "" {
			return run.Spec{}, errors.New("-slots caps the shared holders of a plain key: give -key")
		}
		if err := consullock.CheckSlots(consullock.Mode(cmp.Or(e.Mode, string(consullock.Shared))), e.Slots); err != nil {
			return run.Spec{}, fmt.Errorf("-slots: %w", err)
		}
	}
	cfg := e.Config
	if cfg == nil {
		cfg = &Config{Config: &config.Config{}}
	}
	lk := e.Lock.Over(cfg.LockSettings).Resolve()
	if err := lk.Validate(); err != nil {
		return run.Spec{}, err
	}
	prefix, node := first(e.Prefix, cfg.Consul.Prefix), first(e.SessionNode, cfg.Consul.SessionNode)
	if e.Key != "" {
		return e.keySpec(prefix, node, lk)
	}
	repo, err := cfg.repo(e.Repository)
	if err != nil {
		return run.Spec{}, fmt.Errorf("-repository: %w", err)
	}
	cmd, diags := cfg.command(repo, e.Args, e.Mode, "")
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
	if err := cfg.withLimits(&spec, cmd, nil); err != nil {
		return run.Spec{}, err
	}
	spec.Env = Environment(os.Environ(), repo.Plugin, repo.Config.Env, nil, cmd.toolEnv)
	return spec, nil
}

// repo is the resolved repository -repository names, or why there is none.
func (c *Config) repo(name string) (Repo, error) {
	if _, declared := c.Repository(name); !declared {
		return Repo{}, fmt.Errorf("no repository %q in %s", name, c.Filename)
	}
	if r, ok := c.Repo(name); ok {
		return r, nil
	}
	// New reported why; a caller that loads with plan.Load never gets here.
	return Repo{}, fmt.Errorf("repository %q in %s has no lock key (repolock validate says why)", name, c.Filename)
}

// keySpec is a command under a plain key: nothing is known of the tool.
func (e Exec) keySpec(prefix, node string, lk config.Lock) (run.Spec, error) {
	if err := consullock.CheckKey(e.Key); err != nil {
		return run.Spec{}, fmt.Errorf("-key: %w", err)
	}
	mode := consullock.Exclusive
	if e.Slots > 0 {
		mode = consullock.Shared
	}
	if e.Mode != "" {
		mode = consullock.Mode(e.Mode)
	}
	p, err := plugin.Get("exec")
	if err != nil {
		return run.Spec{}, err
	}
	cmd := planned{args: e.Args, mode: mode, primary: Repo{Config: &config.Repository{Name: e.Key, UnlockNative: plugin.UnlockNever}, Plugin: p, Key: e.Key}}
	spec := cmd.spec(prefix, node, lk)
	spec.Targets[0].Slots = e.Slots
	spec.Env = Environment(os.Environ(), nil, nil, nil, nil)
	return spec, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
