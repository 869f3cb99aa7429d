package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/config"
	"github.com/repolock/repolock/internal/consulclient"
	"github.com/repolock/repolock/internal/hooks"
	"github.com/repolock/repolock/internal/metrics"
	"github.com/repolock/repolock/internal/nomadtask"
	"github.com/repolock/repolock/internal/plan"
	"github.com/repolock/repolock/internal/run"
	"github.com/repolock/repolock/internal/timing"
	"github.com/repolock/repolock/plugin"
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

// loadConfig loads the config and plans every repository and job in it,
// printing diagnostics (warnings too) with their source lines; any error
// is a *configError (exit 78). Every command that reads a config checks
// all of it, so `run` refuses what `validate` refuses, and each command
// reuses what loading resolved.
func loadConfig(path string, stderr io.Writer) (*plan.Config, error) {
	cfg, files, diags := plan.Load(path)
	if len(diags) > 0 {
		_ = config.WriteDiagnostics(stderr, files, diags, false)
	}
	if diags.HasErrors() {
		return nil, &run.ConfigError{Msg: fmt.Sprintf("configuration %s is invalid (%d errors)", path, len(diags.Errs()))}
	}
	return cfg, nil
}

// consulClient builds the client from CONSUL_HTTP_* with the consul block's
// overrides on top. A datacenter the agent does not know fails here, at
// once, whatever the wait (78).
func consulClient(c config.Consul) (*api.Client, error) {
	client, err := newClient(c, c.Address)
	if err != nil {
		return nil, err
	}
	if c.Datacenter != "" {
		ctx, cancel := context.WithTimeout(context.Background(), datacenterCheck)
		defer cancel()
		if _, err := consullock.Datacenter(ctx, client, c.Datacenter); err != nil {
			return nil, err
		}
	}
	return client, nil
}

// sessionClient is the client of consul.session_address, with the same
// credentials as consulClient's; nil when none is set.
func sessionClient(c config.Consul) (*api.Client, error) {
	if c.SessionAddress == "" {
		return nil, nil
	}
	return newClient(c, c.SessionAddress)
}

// newClient is a client of addr ("" for CONSUL_HTTP_ADDR) with the
// environment's and the consul block's other settings.
func newClient(c config.Consul, addr string) (*api.Client, error) {
	conf := api.DefaultConfig()
	if addr != "" {
		conf.Address = addr
	}
	if c.Datacenter != "" {
		conf.Datacenter = c.Datacenter
	}
	if c.TokenFile != "" {
		conf.TokenFile = c.TokenFile
		conf.Token = "" // the file named in the config wins over the environment
	}
	for dst, v := range map[*string]string{&conf.TLSConfig.CAFile: c.TLS.CAFile, &conf.TLSConfig.CAPath: c.TLS.CAPath,
		&conf.TLSConfig.CertFile: c.TLS.CertFile, &conf.TLSConfig.KeyFile: c.TLS.KeyFile, &conf.TLSConfig.Address: c.TLS.ServerName} {
		if v != "" {
			*dst = v
		}
	}
	client, err := consulclient.New(conf)
	if err != nil {
		return nil, &run.ConfigError{Msg: fmt.Sprintf("Consul client for %s: %v", conf.Address, err)}
	}
	return client, nil
}

// newRunner is a Runner on the consul block's clients, for run and exec.
func newRunner(c config.Consul) (*run.Runner, error) {
	client, err := consulClient(c)
	if err != nil {
		return nil, err
	}
	sessions, err := sessionClient(c)
	if err != nil {
		return nil, err
	}
	return &run.Runner{Client: client, SessionClient: sessions, Datacenter: c.Datacenter}, nil
}

// datacenterCheck bounds the look at catalog/datacenters: an agent that
// does not answer in time is left to the requests that follow.
const datacenterCheck = 2 * time.Second

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
	spec, _ := cfg.JobSpec(job.Name) // loadConfig refused a job that does not plan
	spec.Holder = consullock.LocalHolder(version, job.Name)
	fitSupervisor(&spec, log)
	r, err := newRunner(cfg.Consul)
	if err != nil {
		return err
	}
	signals, stop := notifySignals()
	defer stop()
	r.Signals, r.Log = signals, log.With("job", job.Name, "repository", job.Repository)
	r.OnStart = func(vars []string) { hooks.Run(job.Hooks, hooks.Start, vars, r.Log) }
	err = r.Run(context.Background(), spec)
	// After the release: metrics and hooks never hold the lock. Both read
	// the one outcome the exit code comes from.
	o := run.Of(err).Interrupted(r.Summary.InterruptedBy)
	recordMetrics(job, r.Summary, o, r.Log)
	runEndHooks(job, r.Summary, o, r.Log)
	return err
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
	Name       string   `json:"name"`
	Repository string   `json:"repository"`
	Mode       string   `json:"mode"`
	ModeSource string   `json:"mode_source"`
	Also       []string `json:"also_locks,omitempty"` // second repositories (restic copy), locked too
	Limits     []string `json:"limits,omitempty"`     // a slot of each (their keys), held with the lock
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
	out := validationOf(cfg)
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
		also := ""
		if len(j.Also) > 0 {
			also = ", also locks " + strings.Join(j.Also, ", ")
		}
		if len(j.Limits) > 0 {
			also += "; limits " + strings.Join(j.Limits, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s (%s%s)\t\n", j.Name, j.Repository, j.Mode, j.ModeSource, also)
	}
	return tw.Flush()
}

// validationOf is what validate shows of a config that loaded.
func validationOf(cfg *plan.Config) validation {
	var out validation
	for _, res := range cfg.Repos() { // loadConfig refused what does not resolve
		r := res.Config
		out.Repositories = append(out.Repositories, validRepo{Name: r.Name, Tool: r.Tool,
			Location: plugin.Redact(r.Location), Key: res.Key})
	}
	for _, j := range cfg.Jobs {
		spec, _ := cfg.JobSpec(j.Name)
		v := validJob{Name: j.Name, Repository: j.Repository, ModeSource: "set in the job"}
		if j.Mode == "" {
			v.ModeSource = fmt.Sprintf("inferred from %q", strings.Join(j.Command[:min(len(j.Command), 3)], " "))
		}
		for _, t := range spec.Targets {
			switch {
			case t.Limit:
				v.Limits = append(v.Limits, fmt.Sprintf("%s (%d slots, key %s)", t.Repository, t.Slots, t.Key))
			case t.Primary:
				v.Mode = string(t.Mode)
			default:
				v.Also = append(v.Also, fmt.Sprintf("%s (%s)", t.Repository, t.Mode))
			}
		}
		out.Jobs = append(out.Jobs, v)
	}
	return out
}

// fitSupervisor shortens the run's kill_timeout when repolock runs in a
// Nomad task whose own kill_timeout would SIGKILL repolock before it could
// stop the command, release the lock and record the run.
func fitSupervisor(spec *run.Spec, log hclog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	nomad, err := nomadtask.KillTimeout(ctx)
	switch {
	case errors.Is(err, nomadtask.ErrNotInNomad):
		return
	case err != nil:
		log.Warn("could not read the Nomad task's kill_timeout; keeping repolock's", "kill_timeout", spec.Timing.KillTimeout.String(), "error", err)
		return
	}
	fit, changed := timing.FitKillTimeout(spec.Timing.KillTimeout, nomad)
	if !changed {
		log.Debug("Nomad's kill_timeout leaves room for repolock's", "nomad_kill_timeout", nomad.String(), "kill_timeout", spec.Timing.KillTimeout.String())
		return
	}
	note := fmt.Sprintf("kill_timeout %s instead of %s, to stop, release and record before Nomad's kill_timeout of %s", fit, spec.Timing.KillTimeout, nomad)
	log.Warn("Nomad's kill_timeout is shorter than repolock's; using a shorter one", "kill_timeout", fit.String(),
		"configured", spec.Timing.KillTimeout.String(), "nomad_kill_timeout", nomad.String())
	spec.Timing.KillTimeout = fit
	spec.Notes = append(spec.Notes, note)
}

// recordMetrics writes the run's metrics where the job's metrics block
// says; a failure is logged and never changes the exit code.
func recordMetrics(job *config.Job, sum run.Summary, o run.Outcome, log hclog.Logger) {
	sink := metrics.Sink{Textfile: job.Metrics.Textfile, Pushgateway: job.Metrics.Pushgateway}
	if sink == (metrics.Sink{}) {
		return
	}
	r := metrics.Run{Job: job.Name, Repository: job.Repository, Mode: string(sum.Mode), Outcome: o.Metric(),
		Exit: o.Code, Started: sum.Started, Ended: sum.Ended, NativeLocksCleared: sum.NativeLocksCleared, Version: version,
		RenewRTT: sum.RenewRTT}
	if !sum.Granted.IsZero() {
		r.LockWait = sum.Granted.Sub(sum.Started)
	} else {
		r.LockWait = sum.Ended.Sub(sum.Started)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if werr := metrics.Write(ctx, sink, r); werr != nil {
		log.Warn("could not write metrics", "error", werr)
	}
}

// runEndHooks runs the job's hooks for the run's outcome, after the
// release, with the run's variables and REPOLOCK_OUTCOME, _EXIT_CODE and
// _ERROR (one line).
func runEndHooks(job *config.Job, sum run.Summary, o run.Outcome, log hclog.Logger) {
	if len(job.Hooks) == 0 {
		return
	}
	vars := append(append([]string(nil), sum.Vars...), "REPOLOCK_OUTCOME="+o.Metric(),
		fmt.Sprintf("REPOLOCK_EXIT_CODE=%d", o.Code), "REPOLOCK_ERROR="+o.Line())
	hooks.Run(job.Hooks, o.Event(), vars, log)
}
