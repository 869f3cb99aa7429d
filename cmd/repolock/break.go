package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/config"
	"github.com/repolock/repolock/internal/plan"
)

// lockTarget resolves the REPOSITORY|KEY argument of status and break, and
// the Consul client and prefix to read it with: a repository of the config
// (when one is found) names its lock key, any other name is taken as a key.
// A -prefix flag (prefixFlag) wins over the config's prefix.
func lockTarget(name, cfgFlag, prefixFlag string, stderr io.Writer) (key, prefix string, client *api.Client, cfg *plan.Config, err error) {
	key, prefix = name, consullock.DefaultPrefix
	var consul config.Consul
	path := configPath(cfgFlag)
	if _, statErr := os.Stat(path); statErr != nil {
		if cfgFlag != "" || os.Getenv("REPOLOCK_CONFIG") != "" {
			return "", "", nil, nil, usagef("config %s: %v", path, statErr)
		}
		// No config: plain keys.
	} else {
		planned, err := loadConfig(path, stderr)
		if err != nil {
			return "", "", nil, nil, err
		}
		if repo, ok := planned.Repo(name); ok && name != "" {
			key = repo.Key
		}
		cfg = planned
		prefix, consul = cfg.Consul.Prefix, cfg.Consul
	}
	if prefixFlag != "" {
		if err := config.CheckPrefix(prefixFlag); err != nil {
			return "", "", nil, nil, usagef("-prefix: %v", err)
		}
		prefix = prefixFlag
	}
	if key != "" {
		if err := consullock.CheckKey(key); err != nil {
			return "", "", nil, nil, usagef("%q is neither a repository of the config nor a lock key: %v", name, err)
		}
	}
	client, err = consulClient(consul)
	return key, prefix, client, cfg, err
}

func cmdBreak(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("break", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFlag := fs.String("config", "", "config file naming repositories (default $REPOLOCK_CONFIG, else ./config.hcl if present)")
	prefix := fs.String("prefix", "", "Consul KV prefix (default the config's, else repolock)")
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: repolock break [-config FILE] REPOSITORY|KEY\n\n"+
			"Destroys the Consul session of every holder and waiter of the lock at once,\n"+
			"and removes entries left with no session; sessions that are not the lock's\n"+
			"contenders are left alone, and named.\n"+
			"Holders' commands are stopped by their repolock (exit 76), but another\n"+
			"contender may start before they are dead: use it only when a lock is stuck.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return usagef("break: want exactly one REPOSITORY or KEY (not empty: an empty one would name every lock)")
	}
	key, pfx, client, _, err := lockTarget(fs.Arg(0), *cfgFlag, *prefix, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done, err := consullock.Break(ctx, client, pfx, key)
	for _, e := range done.Destroyed {
		fmt.Fprintf(stdout, "destroyed session %s: %s %s, %s, since %s", e.Session, consullock.Escape(e.State), e.Mode, e.Holder,
			e.Since.Format(time.RFC3339))
		if e.State == consullock.StateHolding {
			fmt.Fprintf(stdout, ", fencing token %d", e.Token)
		}
		fmt.Fprintln(stdout)
	}
	for _, id := range done.Orphans {
		fmt.Fprintf(stdout, "destroyed session %s: a contender of %s whose lock entry a KV write had removed\n", id, key)
	}
	for _, k := range done.Removed {
		fmt.Fprintf(stdout, "removed %s: an entry with no session (released by a KV write)\n", consullock.Escape(k))
	}
	for _, k := range done.Skipped {
		fmt.Fprintf(stdout, "skipped %s: held by a session that is not a contender of %s; left alone\n", consullock.Escape(k), key)
	}
	if err != nil {
		return err
	}
	if len(done.Destroyed)+len(done.Orphans)+len(done.Removed) == 0 {
		fmt.Fprintf(stdout, "no holder or waiter for %s: nothing destroyed\n", key)
	}
	return nil
}
