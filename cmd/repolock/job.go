package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/config"
	"github.com/repolock/repolock/internal/run"
	"github.com/repolock/repolock/plugin"
	_ "github.com/repolock/repolock/plugin/all" // registers restic, borg, exec
)

// configPath applies the documented order: -config, REPOLOCK_CONFIG, ./config.hcl.
func configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv("REPOLOCK_CONFIG"); p != "" {
		return p
	}
	return "config.hcl"
}

// loadConfig loads and validates the config, printing diagnostics with
// their source lines; any error is a *configError (exit 78).
func loadConfig(path string, stderr io.Writer) (*config.Config, error) {
	cfg, files, diags := config.Load(path)
	if len(diags) > 0 {
		_ = config.WriteDiagnostics(stderr, files, diags, false)
	}
	if diags.HasErrors() {
		return nil, &configError{fmt.Sprintf("configuration %s is invalid (%d errors)", path, len(diags.Errs()))}
	}
	return cfg, nil
}

// consulClient builds the client from CONSUL_HTTP_* with the consul block's
// overrides on top.
func consulClient(c config.Consul) (*api.Client, error) {
	conf := api.DefaultConfig()
	if c.Address != "" {
		conf.Address = c.Address
	}
	if c.Datacenter != "" {
		conf.Datacenter = c.Datacenter
	}
	if c.TokenFile != "" {
		conf.TokenFile = c.TokenFile
		conf.Token = "" // the file named in the config wins over the environment
	}
	client, err := api.NewClient(conf)
	if err != nil {
		return nil, &configError{fmt.Sprintf("Consul client: %v", err)}
	}
	return client, nil
}

// resolved is a repository as the plugin sees it, with its lock key.
type resolved struct {
	repo   plugin.Repository
	plugin plugin.Plugin
	key    string
}

func resolveRepository(r *config.Repository) (resolved, error) {
	host, _ := os.Hostname()
	pr := plugin.Repository{
		Name: r.Name, Tool: r.Tool, Location: r.Location, PasswordFile: r.PasswordFile,
		PasswordCommand: r.PasswordCommand, LockKey: r.LockKey, UnlockNative: r.UnlockNative,
		SharedLocal: r.SharedLocal, Host: host, Env: r.Env,
	}
	p, err := plugin.Get(r.Tool)
	if err != nil {
		return resolved{}, &configError{fmt.Sprintf("repository %q: %v", r.Name, err)}
	}
	key, err := plugin.LockKey(pr)
	if err != nil {
		return resolved{}, &configError{fmt.Sprintf("repository %q (%s:%d): %v", r.Name, r.DeclRange.Filename, r.DeclRange.Start.Line, err)}
	}
	return resolved{repo: pr, plugin: p, key: key}, nil
}

// jobMode is the job's explicit mode, else the plugin's inference.
func jobMode(explicit string, p plugin.Plugin, argv []string) (consullock.Mode, string, error) {
	if explicit != "" {
		return consullock.Mode(explicit), "set in the job", nil
	}
	m, err := p.Mode(argv)
	if err != nil {
		return "", "", err
	}
	return consullock.Mode(m), fmt.Sprintf("inferred from %q", strings.Join(argv[:min(len(argv), 3)], " ")), nil
}

// specFor turns a configured job into a run.Spec.
func specFor(cfg *config.Config, job *config.Job) (run.Spec, error) {
	repo, _ := cfg.Repository(job.Repository) // references are validated by config
	res, err := resolveRepository(repo)
	if err != nil {
		return run.Spec{}, err
	}
	mode, _, err := jobMode(job.Mode, res.plugin, job.Command)
	if err != nil {
		return run.Spec{}, &configError{fmt.Sprintf("job %q (%s:%d): %v", job.Name, job.DeclRange.Filename, job.DeclRange.Start.Line, err)}
	}
	var prepare [][]string
	if argv := res.plugin.UnlockCommand(res.repo, repo.UnlockNative); argv != nil {
		prepare = append(prepare, argv)
	}
	p := res.plugin
	return run.Spec{
		Job:         job.Name,
		Repository:  repo.Name,
		Key:         res.key,
		Prefix:      prefixOf(cfg),
		SessionNode: cfg.Consul.SessionNode,
		Mode:        mode,
		Args:        job.Command,
		Env:         mergeEnv(environ(), p.Env(res.repo), mapEnv(job.Env)),
		Dir:         job.Dir,
		Timing:      timing(job.Lock),
		Wait:        job.Lock.Wait,
		Skip:        job.Lock.OnBusy == config.OnBusySkip,
		KillSignal:  job.Lock.KillSignal,
		Classify: func(code int) (string, bool) {
			c := p.Classify(code)
			return c.Name, c.Success
		},
		Prepare: prepare,
		Holder:  consullock.LocalHolder(version, job.Name),
	}, nil
}

func prefixOf(cfg *config.Config) string {
	if cfg.Consul.Prefix != "" {
		return cfg.Consul.Prefix
	}
	return consullock.DefaultPrefix
}

func mapEnv(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// mergeEnv overlays KEY=VALUE lists; a later list wins, and each key
// appears once (with duplicates, programs disagree on which one counts).
func mergeEnv(layers ...[]string) []string {
	index := map[string]int{}
	var out []string
	for _, layer := range layers {
		for _, kv := range layer {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := index[k]; ok {
				out[i] = kv
				continue
			}
			index[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	cfgFlag := fs.String("config", "", "config file (default $REPOLOCK_CONFIG, else ./config.hcl)")
	common.register(fs)
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: repolock run [-config FILE] JOB\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("run: want exactly one JOB name")
	}
	log, err := newLogger(common.logLevel, common.logJSON, stderr)
	if err != nil {
		return err
	}
	path := configPath(*cfgFlag)
	cfg, err := loadConfig(path, stderr)
	if err != nil {
		return err
	}
	job, ok := cfg.Job(fs.Arg(0))
	if !ok {
		names := make([]string, 0, len(cfg.Jobs))
		for _, j := range cfg.Jobs {
			names = append(names, j.Name)
		}
		return usagef("run: no job %q in %s (jobs: %s)", fs.Arg(0), path, strings.Join(names, ", "))
	}
	spec, err := specFor(cfg, job)
	if err != nil {
		return err
	}
	client, err := consulClient(cfg.Consul)
	if err != nil {
		return err
	}
	signals, stop := notifySignals()
	defer stop()
	r := &run.Runner{Client: client, Log: log.With("job", job.Name, "repository", spec.Repository), Signals: signals}
	return r.Run(context.Background(), spec)
}

// validation is what `repolock validate -json` prints.
type validation struct {
	Repositories []validRepo `json:"repositories"`
	Jobs         []validJob  `json:"jobs"`
}

type validRepo struct {
	Name     string `json:"name"`
	Tool     string `json:"tool"`
	Location string `json:"location"` // with any password redacted
	Key      string `json:"lock_key"`
}

type validJob struct {
	Name       string `json:"name"`
	Repository string `json:"repository"`
	Mode       string `json:"mode"`
	ModeSource string `json:"mode_source"`
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFlag := fs.String("config", "", "config file (default $REPOLOCK_CONFIG, else ./config.hcl)")
	asJSON := fs.Bool("json", false, "print JSON (for scripts)")
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: repolock validate [-config FILE] [-json]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("validate: unexpected arguments %q", fs.Args())
	}
	path := configPath(*cfgFlag)
	cfg, err := loadConfig(path, stderr)
	if err != nil {
		return err
	}
	var out validation
	var errs []error
	keys := map[string]string{}
	for _, r := range cfg.Repositories {
		res, err := resolveRepository(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys[r.Name] = res.key
		out.Repositories = append(out.Repositories, validRepo{Name: r.Name, Tool: r.Tool,
			Location: plugin.Redact(r.Location), Key: res.key})
	}
	for _, j := range cfg.Jobs {
		r, _ := cfg.Repository(j.Repository)
		p, err := plugin.Get(r.Tool)
		if err != nil {
			continue // reported with the repository
		}
		mode, src, err := jobMode(j.Mode, p, j.Command)
		if err != nil {
			errs = append(errs, &configError{fmt.Sprintf("job %q (%s:%d): %v", j.Name, j.DeclRange.Filename, j.DeclRange.Start.Line, err)})
			continue
		}
		out.Jobs = append(out.Jobs, validJob{Name: j.Name, Repository: j.Repository, Mode: string(mode), ModeSource: src})
	}
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(stderr, "Error: %v\n", e)
		}
		return &configError{fmt.Sprintf("configuration %s is invalid (%d errors)", path, len(errs))}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s: valid\n\nREPOSITORY\tTOOL\tLOCK KEY\tLOCATION\n", path)
	for _, r := range out.Repositories {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Tool, r.Key, r.Location)
	}
	fmt.Fprintf(tw, "\nJOB\tREPOSITORY\tMODE\t\n")
	for _, j := range out.Jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s (%s)\t\n", j.Name, j.Repository, j.Mode, j.ModeSource)
	}
	return tw.Flush()
}
