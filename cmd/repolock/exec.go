package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/config"
	"github.com/repolock/repolock/internal/plan"
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

// execFlags are the flags of `repolock exec`.
type execFlags struct {
	common                                        commonFlags
	key, repository, cfg, prefix, node, mode, sig string
	datacenter, sessionAddr                       string
	wait, ttl, killTimeout, renew, margin         time.Duration
	slots                                         int
	set                                           map[string]bool // the flags given explicitly
}

func (f *execFlags) register(fs *flag.FlagSet) {
	defaults := config.DefaultLock()
	fs.StringVar(&f.key, "key", "", "lock key (one KV path segment under <prefix>/repos/: A-Z a-z 0-9 . _ -)")
	fs.StringVar(&f.repository, "repository", "", "lock the repository of this name from the config instead of -key")
	fs.StringVar(&f.cfg, "config", "", "config file for -repository (default $REPOLOCK_CONFIG, else ./config.hcl)")
	fs.StringVar(&f.prefix, "prefix", consullock.DefaultPrefix, "Consul KV prefix")
	fs.StringVar(&f.datacenter, "datacenter", "", "datacenter whose servers hold the lock (default the config's consul.datacenter, else the agent's own)")
	fs.StringVar(&f.sessionAddr, "session-address", "", "a Consul server agent's HTTP address that creates the session, for a -datacenter other than the agent's (default the config's consul.session_address, else the agent)")
	fs.StringVar(&f.node, "session-node", consullock.DefaultNode, "catalog-only node the session is bound to (needs node:write and session:write)")
	fs.StringVar(&f.mode, "mode", "", "lock mode: exclusive or shared (default exclusive; with -repository inferred from the command)")
	fs.IntVar(&f.slots, "slots", 0, "a semaphore: at most this many holders of -key at once (shared holders; an exclusive one runs alone); implies -mode shared")
	fs.DurationVar(&f.wait, "wait", defaults.Wait, "how long to wait for the lock (0: try once); then exit 75")
	fs.DurationVar(&f.ttl, "ttl", defaults.TTL, "Consul session TTL")
	fs.DurationVar(&f.killTimeout, "kill-timeout", defaults.KillTimeout, "time between the kill signal and SIGKILL")
	sig, _ := config.SignalName(defaults.KillSignal)
	fs.StringVar(&f.sig, "kill-signal", sig, "signal that asks the command to stop")
	fs.DurationVar(&f.renew, "renew-interval", 0, "session renewal interval (default ttl/3)")
	fs.DurationVar(&f.margin, "margin", 0, "safety margin before the server may expire the session (default ttl/10)")
	f.common.register(fs)
}

// plan is the exec plan of the flags: those given explicitly win over the
// config (with -repository) or the defaults.
func (f *execFlags) plan(cmd []string) (plan.Exec, error) {
	e := plan.Exec{Key: f.key, Repository: f.repository, Args: cmd, Mode: f.mode, Slots: f.slots}
	if f.set["slots"] && f.slots <= 0 {
		return e, usagef("exec: -slots %d: must be between 1 and %d (leave it out for no cap)", f.slots, consullock.MaxSlots)
	}
	if f.set["key"] && f.key == "" {
		return e, usagef("exec: -key: %v", consullock.CheckKey(""))
	}
	given := func(name string, v *time.Duration) *time.Duration {
		if f.set[name] {
			return v
		}
		return nil
	}
	e.Lock = config.LockSettings{Wait: given("wait", &f.wait), TTL: given("ttl", &f.ttl), KillTimeout: given("kill-timeout", &f.killTimeout),
		RenewInterval: given("renew-interval", &f.renew), Margin: given("margin", &f.margin)}
	if f.set["kill-signal"] {
		sig, err := config.ParseSignal(f.sig)
		if err != nil {
			return e, usagef("exec: -kill-signal: %v", err)
		}
		e.Lock.KillSignal = &sig
	}
	if f.set["prefix"] || f.repository == "" {
		e.Prefix = f.prefix
	}
	if f.set["session-node"] || f.repository == "" {
		e.SessionNode = f.node
	}
	return e, nil
}

func cmdExec(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &execFlags{set: map[string]bool{}}
	f.register(fs)
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: repolock exec -key KEY|-repository NAME [flags] -- CMD ARGS…\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	cmd := fs.Args()
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	}
	e, err := f.plan(cmd)
	if err != nil {
		return err
	}
	var consulConf config.Consul
	if f.repository != "" {
		cfg, err := loadConfig(configPath(f.cfg), stderr)
		if err != nil {
			return err
		}
		e.Config, consulConf = cfg, cfg.Consul
	}
	spec, err := e.Plan()
	if err != nil {
		return usagef("exec: %v", err)
	}
	spec.Holder = consullock.LocalHolder(version, "")
	log, err := newLogger(f.common.logLevel, f.common.logJSON, stderr)
	if err != nil {
		return err
	}
	fitSupervisor(&spec, log)
	if f.datacenter != "" {
		consulConf.Datacenter = f.datacenter
	}
	if f.sessionAddr != "" {
		consulConf.SessionAddress = f.sessionAddr
	}
	if consulConf.SessionAddress != "" && consulConf.Datacenter == "" {
		return usagef("exec: -session-address creates the sessions of locks in another datacenter: give -datacenter (or the config's consul.datacenter) too")
	}
	r, err := newRunner(consulConf)
	if err != nil {
		return err
	}
	signals, stop := notifySignals()
	defer stop()
	r.Log, r.Signals = log, signals
	return r.Run(context.Background(), spec)
}
