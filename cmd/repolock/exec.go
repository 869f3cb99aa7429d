package main

import (
	"context"
	"flag"
	"io"
	"os"
	"strings"
	"time"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/config"
	"github.com/repolock/repolock/internal/run"
	"github.com/repolock/repolock/plugin"
)

// commonFlags are the flags every command that talks to Consul takes.
type commonFlags struct {
	logLevel string
	logJSON  bool
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.BoolVar(&c.logJSON, "log-json", false, "log as JSON lines (for Nomad log shipping)")
}

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	return nil
}

func cmdExec(args []string, stderr io.Writer) error {
	defaults := config.DefaultLock()
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		common      commonFlags
		key         = fs.String("key", "", "lock key (one KV path segment under <prefix>/repos/)")
		repository  = fs.String("repository", "", "lock the repository of this name from the config instead of -key")
		cfgFlag     = fs.String("config", "", "config file for -repository (default $REPOLOCK_CONFIG, else ./config.hcl)")
		prefix      = fs.String("prefix", consullock.DefaultPrefix, "Consul KV prefix")
		sessionNode = fs.String("session-node", consullock.DefaultNode, "catalog-only node the session is bound to (needs node:write and session:write)")
		mode        = fs.String("mode", "", "lock mode: exclusive or shared (default exclusive; with -repository inferred from the command)")
		wait        = fs.Duration("wait", defaults.Wait, "how long to wait for the lock (0: try once); then exit 75")
		ttl         = fs.Duration("ttl", defaults.TTL, "Consul session TTL")
		killTimeout = fs.Duration("kill-timeout", defaults.KillTimeout, "time between the kill signal and SIGKILL")
		killSignal  = fs.String("kill-signal", "SIGTERM", "signal that asks the command to stop")
		renew       = fs.Duration("renew-interval", 0, "session renewal interval (default ttl/3)")
		margin      = fs.Duration("margin", 0, "safety margin before the server may expire the session (default ttl/10)")
	)
	common.register(fs)
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: repolock exec -key KEY|-repository NAME [flags] -- CMD ARGS…\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cmd := fs.Args()
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	}
	switch {
	case len(cmd) == 0:
		return usagef("exec: no command given (repolock exec -key KEY -- CMD ARGS…)")
	case *key == "" && *repository == "":
		return usagef("exec: -key is required (or -repository NAME with a config)")
	case *key != "" && *repository != "":
		return usagef("exec: give -key or -repository, not both")
	case strings.Contains(*key, "/"):
		return usagef("exec: -key %q must be one path segment (no '/')", *key)
	case *mode != "" && *mode != string(consullock.Exclusive) && *mode != string(consullock.Shared):
		return usagef("exec: -mode %q: want exclusive or shared", *mode)
	}

	// Settings start from the config (with -repository) or the defaults;
	// flags given explicitly win.
	spec := run.Spec{Repository: *key, Key: *key, Prefix: *prefix, Args: cmd, Env: environ(),
		Mode: consullock.Mode(*mode), Holder: consullock.LocalHolder(version, "")}
	lk := defaults
	var consulConf config.Consul
	p, err := plugin.Get("exec")
	if err != nil {
		return err
	}
	if *repository != "" {
		path := configPath(*cfgFlag)
		cfg, err := loadConfig(path, stderr)
		if err != nil {
			return err
		}
		repo, ok := cfg.Repository(*repository)
		if !ok {
			return usagef("exec: no repository %q in %s", *repository, path)
		}
		res, err := resolveRepository(repo)
		if err != nil {
			return err
		}
		p, lk, consulConf = res.plugin, cfg.Lock, cfg.Consul
		spec.Repository, spec.Key = repo.Name, res.key
		spec.Env = mergeEnv(spec.Env, p.Env(res.repo))
		if argv := p.UnlockCommand(res.repo, repo.UnlockNative); argv != nil {
			spec.Prepare = [][]string{argv}
		}
		if !set["prefix"] {
			spec.Prefix = prefixOf(cfg)
		}
		if !set["session-node"] && cfg.Consul.SessionNode != "" {
			*sessionNode = cfg.Consul.SessionNode
		}
		if *mode == "" {
			m, _, err := jobMode("", p, cmd)
			if err != nil {
				return usagef("exec: %v (use -mode)", err)
			}
			spec.Mode = m
		}
	}
	if spec.Mode == "" {
		spec.Mode = consullock.Exclusive
	}
	if err := lockFlags(&lk, set, *wait, *ttl, *killTimeout, *renew, *margin, *killSignal); err != nil {
		return err
	}
	spec.Timing, spec.Wait, spec.KillSignal, spec.Skip = timing(lk), lk.Wait, lk.KillSignal, lk.OnBusy == config.OnBusySkip
	spec.SessionNode = *sessionNode
	spec.Classify = func(code int) (string, bool) {
		c := p.Classify(code)
		return c.Name, c.Success
	}

	log, err := newLogger(common.logLevel, common.logJSON, stderr)
	if err != nil {
		return err
	}
	client, err := consulClient(consulConf)
	if err != nil {
		return err
	}
	signals, stop := notifySignals()
	defer stop()
	r := &run.Runner{Client: client, Log: log, Signals: signals}
	return r.Run(context.Background(), spec)
}

// lockFlags lays the lock flags that were given over lk and validates the
// result. RenewInterval and Margin follow a changed TTL unless given.
func lockFlags(lk *config.Lock, set map[string]bool, wait, ttl, killTimeout, renew, margin time.Duration, killSignal string) error {
	if set["kill-signal"] {
		sig, err := config.ParseSignal(killSignal)
		if err != nil {
			return usagef("exec: -kill-signal: %v", err)
		}
		lk.KillSignal = sig
	}
	if set["wait"] {
		lk.Wait = wait
	}
	if set["kill-timeout"] {
		lk.KillTimeout = killTimeout
	}
	if set["ttl"] {
		lk.TTL = ttl
		lk.RenewInterval, lk.Margin = config.DefaultRenewInterval(ttl), config.DefaultMargin(ttl)
	}
	if set["renew-interval"] {
		lk.RenewInterval = renew
	}
	if set["margin"] {
		lk.Margin = margin
	}
	if err := lk.Validate(); err != nil {
		return usagef("exec: %v", err)
	}
	return nil
}

// timing converts validated config settings to the lock's timing model.
func timing(l config.Lock) consullock.Timing {
	return consullock.Timing{TTL: l.TTL, RenewInterval: l.RenewInterval, KillTimeout: l.KillTimeout, Margin: l.Margin}
}

// withheldEnv are variables repolock needs and the command must not see:
// Consul credentials are secrets of the lock, not of the backup. (A command
// that needs Consul gets its own token through the job's env.)
var withheldEnv = map[string]bool{"CONSUL_HTTP_TOKEN": true, "CONSUL_HTTP_TOKEN_FILE": true, "CONSUL_HTTP_AUTH": true}

// environ is the environment the command inherits: repolock's own, minus
// its REPOLOCK_* variables (the runner sets those afresh) and the Consul
// credentials.
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "REPOLOCK_") && !withheldEnv[k] {
			env = append(env, kv)
		}
	}
	return env
}
