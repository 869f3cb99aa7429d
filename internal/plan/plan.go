// Package plan turns configuration, flags and a plugin into one run.Spec:
// which locks to take (keys, modes, in one global order), the command's
// environment, the timing model, and the checks that the command writes
// only what it locks. `repolock run`, `repolock exec` and `repolock
// validate` all go through it, so each of these decisions has one place:
//
//   - a repository's plugin, identity and lock key: resolve, once per
//     load (Config);
//   - the environment order: Environment;
//   - the repository a command may name: targets;
//   - the lock order of a command that uses two repositories: Spec.Targets
//     sorted by key.
//
// The lock settings of flags laid over a config are config.LockSettings.
package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/config"
	"github.com/repolock/repolock/internal/run"
	"github.com/repolock/repolock/plugin"
	_ "github.com/repolock/repolock/plugin/all" // registers restic, borg, exec
)

// Host is this host's name, which binds local repository paths; a
// variable so that tests can plan for another host.
var Host = func() string { h, _ := os.Hostname(); return h }

// Repo is a configured repository as the plugin sees it, with its lock key.
type Repo struct {
	Config   *config.Repository
	Plugin   plugin.Plugin
	Repo     plugin.Repository
	Identity string // "" when lock_key is set and the location has no identity
	Key      string
}

// Config is a loaded configuration planned once: each repository
// resolved to its plugin, identity and lock key, each job to its
// run.Spec. `run`, `exec`, `validate`, `status` and `break` all read it,
// so a key is derived in one place (resolve) and once per load.
type Config struct {
	*config.Config
	repos []Repo              // the repositories that resolved, in file order
	specs map[string]run.Spec // the jobs that planned, by name
}

// Load reads a configuration (config.Load) and plans it (New). The
// diagnostics are both steps'; the Config is nil when they hold errors.
func Load(path string) (*Config, *config.Files, hcl.Diagnostics) {
	cfg, files, diags := config.Load(path)
	if diags.HasErrors() {
		return nil, files, diags
	}
	c, more := New(cfg)
	if diags = append(diags, more...); diags.HasErrors() {
		return nil, files, diags
	}
	return c, files, diags
}

// New plans every repository and job of cfg, as `repolock validate` and
// `repolock run` do, and returns every problem found: diagnostics at the
// attribute that causes each (exit 78), and warnings that say what could
// not be checked. What does not plan is left out of the Config.
func New(cfg *config.Config) (*Config, hcl.Diagnostics) {
	c := &Config{Config: cfg, specs: map[string]run.Spec{}}
	var diags hcl.Diagnostics
	for _, r := range cfg.Repositories {
		repo, err := resolve(cfg, r)
		if err != nil {
			attr := "location"
			if r.LockKey != "" {
				attr = "lock_key"
			}
			diags = append(diags, attrDiag(r.Ranges, r.DeclRange, attr, "Cannot derive the lock key", err.Error()))
			continue
		}
		c.repos = append(c.repos, repo)
	}
	for _, j := range cfg.Jobs {
		repo, ok := c.Repo(j.Repository)
		if !ok {
			continue // reported with the repository
		}
		spec, d := c.job(j, repo)
		diags = append(diags, d...)
		if !d.HasErrors() {
			c.specs[j.Name] = spec
		}
	}
	return c, diags
}

// Repo is the resolved repository of that name; false when the config has
// none, or when New reported that it does not resolve.
func (c *Config) Repo(name string) (Repo, bool) {
	for _, r := range c.repos {
		if r.Config.Name == name {
			return r, true
		}
	}
	return Repo{}, false
}

// Repos are the resolved repositories, in file order.
func (c *Config) Repos() []Repo { return slices.Clone(c.repos) }

// JobSpec is the planned run of the job of that name; false when the
// config has none, or when New reported that it does not plan.
func (c *Config) JobSpec(name string) (run.Spec, bool) {
	spec, ok := c.specs[name]
	return spec, ok
}

// resolve turns a configured repository into a Repo, deriving its
// identity once and its key from that identity. A relative local location
// is relative to the config file's directory, never to the working
// directory, so a config gives the same keys from anywhere.
func resolve(cfg *config.Config, r *config.Repository) (Repo, error) {
	p, err := plugin.Get(r.Tool)
	if err != nil {
		return Repo{}, err
	}
	pr := plugin.Repository{
		Name: r.Name, Tool: r.Tool, Location: r.Location, PasswordFile: r.PasswordFile,
		PasswordCommand: r.PasswordCommand, LockKey: r.LockKey, UnlockNative: r.UnlockNative,
		SharedLocal: r.SharedLocal, Host: Host(), BaseDir: configDir(cfg),
	}
	res := Repo{Config: r, Plugin: p, Repo: pr}
	// With lock_key set, a location the plugin cannot read is no error:
	// the key does not depend on it (Identity stays "").
	res.Identity, err = plugin.IdentityOf(p, pr)
	if err != nil && r.LockKey == "" {
		return Repo{}, err
	}
	if res.Key, err = plugin.KeyOf(pr, res.Identity); err != nil {
		return Repo{}, err
	}
	return res, nil
}

func configDir(cfg *config.Config) string {
	if cfg.Filename == "" {
		return ""
	}
	abs, err := filepath.Abs(cfg.Filename)
	if err != nil {
		return ""
	}
	return filepath.Dir(abs)
}

// job plans a configured job under its resolved repository. Problems are
// diagnostics at the attribute that causes them; warnings say what could
// not be checked.
func (c *Config) job(job *config.Job, repo Repo) (run.Spec, hcl.Diagnostics) {
	cmd, diags := c.command(repo, job.Command, job.Mode, job.Dir)
	for _, d := range diags {
		d.Subject = subject(job.Ranges, job.DeclRange, "command")
		if d.Summary == summaryMode && job.Ranges["mode"] != (hcl.Range{}) {
			d.Subject = subject(job.Ranges, job.DeclRange, "mode")
		}
	}
	if diags.HasErrors() {
		return run.Spec{}, diags
	}
	spec := cmd.spec(c.Consul.Prefix, c.Consul.SessionNode, job.Lock)
	if err := c.withLimits(&spec, cmd, job.Limits); err != nil {
		return run.Spec{}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid limit key", Detail: err.Error(),
			Subject: subject(job.Ranges, job.DeclRange, "limits")}}
	}
	spec.Job = job.Name
	spec.Env = Environment(os.Environ(), repo.Plugin, repo.Config.Env, job.Env, cmd.toolEnv)
	spec.Dir = job.Dir
	return spec, diags
}

// withLimits adds to spec a slot of each limit that the job names: its
// own, its repository's, and those of the repositories it reads from
// (restic copy --from-repo), once each, in the global order. A slot is a
// shared holder of the limit's key, capped at its slots.
func (c *Config) withLimits(spec *run.Spec, cmd planned, own []string) error {
	var names []string
	add := func(ns []string) {
		for _, n := range ns {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	add(own)
	add(cmd.primary.Config.Limits)
	for _, f := range cmd.from {
		add(f.Config.Limits)
	}
	for _, n := range names {
		l, ok := c.Limit(n)
		if !ok {
			return fmt.Errorf("no limit %q", n) // config.Load reported it
		}
		key := l.Name
		if l.PerHost {
			key = PerHostKey(l.Name, Host())
		}
		if err := consullock.CheckKey(key); err != nil {
			return fmt.Errorf("limit %q: key %q: %v", n, key, err)
		}
		spec.Targets = append(spec.Targets, run.Target{Repository: l.Name, Key: key, Mode: consullock.Shared, Slots: l.Slots, Limit: true})
	}
	run.SortTargets(spec.Targets)
	return nil
}

// PerHostKey is the key of a per-host limit on host: <name>.<host>, the
// host's name lowercased into key bytes (as a repository's key binds a
// local path), cut with a hash of the whole when it is too long. Limit
// names have no '.', so no two limits' keys meet.
func PerHostKey(name, host string) string {
	h := strings.ToLower(consullock.Sanitize(host))
	if room := consullock.MaxKeyLen - len(name) - 1; len(h) > room {
		sum := sha256.Sum256([]byte(host))
		h = h[:room-9] + "-" + hex.EncodeToString(sum[:4])
	}
	return name + "." + h
}

const summaryMode = "Lock mode cannot be inferred"

// planned is what a command needs under one repository's lock.
type planned struct {
	args    []string
	primary Repo
	mode    consullock.Mode
	from    []Repo   // second repositories (restic copy --from-repo), locked shared
	toolEnv []string // the plugin's variables for the primary and from repositories
	warn    string
}

// command checks a command against the repository it runs under and
// infers its mode; the diagnostics have no subject yet.
func (c *Config) command(repo Repo, args []string, explicitMode, dir string) (planned, hcl.Diagnostics) {
	p := planned{args: args, primary: repo}
	var diags hcl.Diagnostics
	if explicitMode != "" {
		p.mode = consullock.Mode(explicitMode)
	} else if m, err := repo.Plugin.Mode(args); err == nil {
		p.mode = m
	} else {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summaryMode, Detail: err.Error() + "."})
	}
	from, err := c.targets(repo, args, dir)
	switch {
	case errors.Is(err, plugin.ErrOpaque):
		if repo.Plugin.Name() != "exec" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Repository not checked",
				Detail: fmt.Sprintf("%s; make sure it uses only repository %q, whose lock it holds (the %s variables name it).",
					err, repo.Config.Name, repo.Plugin.Name())})
		}
	case err != nil:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Command names another repository", Detail: err.Error()})
	}
	p.from = from
	p.toolEnv = repo.Plugin.Env(repo.Repo)
	for _, f := range from {
		p.toolEnv = append(p.toolEnv, f.Plugin.(plugin.Copier).FromEnv(f.Repo)...)
	}
	return p, diags
}

// targets checks every repository the command names: the locked one in
// any spelling, or a configured second repository it reads from, which it
// returns.
func (c *Config) targets(repo Repo, args []string, dir string) ([]Repo, error) {
	named, err := repo.Plugin.Targets(args)
	if err != nil {
		return nil, err
	}
	// A relative path in the command is relative to the command's working
	// directory: known only when dir is absolute.
	base := ""
	if filepath.IsAbs(dir) {
		base = filepath.Clean(dir)
	}
	var from []Repo
	for _, t := range named {
		probe := repo.Repo
		probe.Location, probe.LockKey, probe.BaseDir = t.Location, "", base
		id, err := repo.Plugin.Identity(probe)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", plugin.Redact(t.Arg), err)
		}
		if t.From {
			src, ok := c.byIdentity(repo.Plugin.Name(), id)
			if !ok {
				return nil, fmt.Errorf("%s names a repository that no repository block declares: declare it so that repolock locks it too (shared), in one order with %q", plugin.Redact(t.Arg), repo.Config.Name)
			}
			if _, copier := src.Plugin.(plugin.Copier); !copier {
				return nil, fmt.Errorf("%s: %s cannot read a second repository", plugin.Redact(t.Arg), src.Plugin.Name())
			}
			if src.Key != repo.Key && !slices.ContainsFunc(from, func(r Repo) bool { return r.Key == src.Key }) {
				from = append(from, src)
			}
			continue
		}
		if id != repo.Identity {
			return nil, fmt.Errorf("%s is not repository %q (%s), whose lock this job holds: the command would write a repository without its lock. Drop the flag (repolock gives %s the repository), or run the job under the repository it names",
				plugin.Redact(t.Arg), repo.Config.Name, plugin.Redact(repo.Config.Location), repo.Plugin.Name())
		}
	}
	return from, nil
}

// byIdentity finds the configured repository of tool whose identity is id.
func (c *Config) byIdentity(tool, id string) (Repo, bool) {
	for _, r := range c.repos {
		if r.Config.Tool == tool && r.Identity == id {
			return r, true
		}
	}
	return Repo{}, false
}

// spec assembles the run.Spec of a planned command under lock settings.
func (c planned) spec(prefix, sessionNode string, lk config.Lock) run.Spec {
	if prefix == "" {
		prefix = consullock.DefaultPrefix
	}
	spec := run.Spec{
		Prefix: prefix, SessionNode: sessionNode, Args: c.args,
		Timing: lk.Model, Wait: lk.Wait, Skip: lk.OnBusy == config.OnBusySkip, KillSignal: lk.KillSignal,
	}
	p := c.primary.Plugin
	spec.Classify = func(code int) (string, bool) {
		cl := p.Classify(code)
		return cl.Name, cl.Success
	}
	spec.Busy = func(code int) bool { return p.Classify(code).Name == plugin.NameNativeLockBusy }
	// The tool's own commands run the program the job runs, when that is
	// the tool by a path (a pinned binary outside PATH).
	program := ""
	if len(c.args) > 0 && filepath.Base(c.args[0]) == p.Name() {
		program = c.args[0]
	}
	spec.Targets = append(spec.Targets, target(c.primary, c.mode, true, program))
	for _, f := range c.from {
		spec.Targets = append(spec.Targets, target(f, consullock.Shared, false, program))
	}
	// One global order, so that two jobs that lock the same two
	// repositories in opposite roles cannot deadlock.
	run.SortTargets(spec.Targets)
	return spec
}

// target is one lock of a run, with what repolock may do about the
// tool's own locks in that repository.
func target(r Repo, mode consullock.Mode, primary bool, program string) run.Target {
	t := run.Target{Repository: r.Config.Name, Key: r.Key, Mode: mode, Primary: primary}
	policy := r.Config.UnlockNative
	n := &run.Native{
		Tool:    r.Plugin.Name(),
		Program: program,
		Policy:  policy,
		Env:     Environment(os.Environ(), r.Plugin, r.Config.Env, nil, r.Plugin.Env(r.Repo)),
		Clear:   r.Plugin.UnlockCommand(policy),
		Fix:     fixHint(r),
	}
	if policy != plugin.UnlockNever {
		n.Stale = r.Plugin.UnlockCommand(plugin.UnlockStale)
	}
	n.Lister, _ = r.Plugin.(plugin.LockLister)
	t.Native = n
	return t
}

// fixHint is what the error line of a "native lock busy" exit tells the
// operator to do.
func fixHint(r Repo) string {
	where := fmt.Sprintf("repository %q", r.Config.Name)
	if rg := r.Config.DeclRange; rg.Filename != "" {
		where += fmt.Sprintf(" (%s:%d)", rg.Filename, rg.Start.Line)
	}
	all := r.Plugin.UnlockCommand(plugin.UnlockAll)
	if all == nil {
		return ""
	}
	switch r.Config.UnlockNative {
	case plugin.UnlockNever:
		return fmt.Sprintf("if every %s of this repository runs under repolock, set unlock_native = %q on %s and repolock clears it under an exclusive lock; otherwise check that no %s runs and run %q",
			r.Plugin.Name(), plugin.UnlockAll, where, r.Plugin.Name(), strings.Join(all, " "))
	case plugin.UnlockStale:
		return fmt.Sprintf("the lock is not stale to %s (it is fresh, or from another host); if every %s of this repository runs under repolock, set unlock_native = %q on %s; otherwise check that no %s runs and run %q",
			r.Plugin.Name(), r.Plugin.Name(), plugin.UnlockAll, where, r.Plugin.Name(), strings.Join(all, " "))
	}
	return fmt.Sprintf("check that no %s outside repolock uses the repository and run %q", r.Plugin.Name(), strings.Join(all, " "))
}

func subject(ranges map[string]hcl.Range, decl hcl.Range, attr string) *hcl.Range {
	if r, ok := ranges[attr]; ok {
		return r.Ptr()
	}
	return decl.Ptr()
}

func attrDiag(ranges map[string]hcl.Range, decl hcl.Range, attr, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail + ".", Subject: subject(ranges, decl, attr)}
}
