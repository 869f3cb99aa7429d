// Package plan turns configuration, flags and a plugin into one run.Spec:
// which locks to take (keys, modes, in one global order), the command's
// environment, the timing model, and the checks that the command writes
// only what it locks. `repolock run`, `repolock exec` and `repolock
// validate` all go through it, so each of these decisions has one place:
//
//   - the environment order: Environment;
//   - the repository a command may name: targets;
//   - the lock order of a command that uses two repositories: Spec.Targets
//     sorted by key;
//   - the timing model of flags laid over a config: Overrides.Apply.
package plan

import (
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

// Resolve turns a configured repository into a Repo. A relative local
// location is relative to the config file's directory, never to the
// working directory, so a config gives the same keys from anywhere.
func Resolve(cfg *config.Config, r *config.Repository) (Repo, error) {
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
	res.Identity, err = plugin.IdentityOf(p, pr)
	if err != nil && r.LockKey == "" {
		return Repo{}, err
	}
	if res.Key, err = plugin.LockKey(pr); err != nil {
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

// Job plans a configured job. Problems are diagnostics at the attribute
// that causes them (exit 78); warnings say what could not be checked.
func Job(cfg *config.Config, job *config.Job) (run.Spec, hcl.Diagnostics) {
	r, _ := cfg.Repository(job.Repository) // references are validated by config
	repo, err := Resolve(cfg, r)
	if err != nil {
		return run.Spec{}, hcl.Diagnostics{attrDiag(r.Ranges, r.DeclRange, "location", "Cannot derive the lock key", err.Error())}
	}
	cmd, diags := command(cfg, repo, job.Command, job.Mode, job.Dir)
	for _, d := range diags {
		d.Subject = subject(job.Ranges, job.DeclRange, "command")
		if d.Summary == summaryMode && job.Ranges["mode"] != (hcl.Range{}) {
			d.Subject = subject(job.Ranges, job.DeclRange, "mode")
		}
	}
	if diags.HasErrors() {
		return run.Spec{}, diags
	}
	spec := cmd.spec(cfg.Consul.Prefix, cfg.Consul.SessionNode, job.Lock)
	spec.Job = job.Name
	spec.Env = Environment(os.Environ(), repo.Plugin, r.Env, job.Env, cmd.toolEnv)
	spec.Dir = job.Dir
	return spec, diags
}

// Check plans every repository and job of cfg, as `repolock validate` and
// `repolock run` do, and returns every problem found.
func Check(cfg *config.Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, r := range cfg.Repositories {
		if _, err := Resolve(cfg, r); err != nil {
			attr := "location"
			if r.LockKey != "" {
				attr = "lock_key"
			}
			diags = append(diags, attrDiag(r.Ranges, r.DeclRange, attr, "Cannot derive the lock key", err.Error()))
		}
	}
	for _, j := range cfg.Jobs {
		r, _ := cfg.Repository(j.Repository)
		if _, err := Resolve(cfg, r); err != nil {
			continue // reported with the repository
		}
		_, d := Job(cfg, j)
		diags = append(diags, d...)
	}
	return diags
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
func command(cfg *config.Config, repo Repo, args []string, explicitMode, dir string) (planned, hcl.Diagnostics) {
	c := planned{args: args, primary: repo}
	var diags hcl.Diagnostics
	if explicitMode != "" {
		c.mode = consullock.Mode(explicitMode)
	} else if m, err := repo.Plugin.Mode(args); err == nil {
		c.mode = m
	} else {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summaryMode, Detail: err.Error() + "."})
	}
	from, err := targets(cfg, repo, args, dir)
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
	c.from = from
	c.toolEnv = repo.Plugin.Env(repo.Repo)
	for _, f := range from {
		c.toolEnv = append(c.toolEnv, f.Plugin.(plugin.Copier).FromEnv(f.Repo)...)
	}
	return c, diags
}

// targets checks every repository the command names: the locked one in
// any spelling, or a configured second repository it reads from, which it
// returns.
func targets(cfg *config.Config, repo Repo, args []string, dir string) ([]Repo, error) {
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
			src, ok := configuredByIdentity(cfg, repo.Plugin.Name(), id)
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

// configuredByIdentity finds the configured repository of tool whose
// identity is id.
func configuredByIdentity(cfg *config.Config, tool, id string) (Repo, bool) {
	for _, r := range cfg.Repositories {
		if r.Tool != tool {
			continue
		}
		res, err := Resolve(cfg, r)
		if err == nil && res.Identity == id {
			return res, true
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
	// One global order by key, so that two jobs that lock the same two
	// repositories in opposite roles cannot deadlock.
	slices.SortFunc(spec.Targets, func(a, b run.Target) int { return strings.Compare(a.Key, b.Key) })
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
