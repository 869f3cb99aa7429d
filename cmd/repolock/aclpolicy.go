package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/plan"
)

// cmdACLPolicy prints the least Consul ACL policy that repolock needs for
// the named repositories (every repository of the config when none is
// named): write on each one's own KV folder only, the session node's node
// and session rules, and the prefix's epoch key. A backup host's token then cannot touch another
// repository's queue.
func cmdACLPolicy(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("acl-policy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFlag := fs.String("config", "", "config file (default $REPOLOCK_CONFIG, else ./config.hcl)")
	readOnly := fs.Bool("read-only", false, "an operator's read-only policy: repolock status, and nothing that writes")
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: repolock acl-policy [-config FILE] [-read-only] [REPOSITORY|KEY…]\n\n"+
			"Prints the Consul ACL policy repolock needs for these repositories (all of the\n"+
			"config's when none is named); a name that is not a repository is taken as a key.\n"+
			"With -read-only, the policy of an operator who reads them (status) and writes\n"+
			"nothing: only repolock's tokens should write under the prefix.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path := configPath(*cfgFlag)
	cfg, err := loadConfig(path, stderr)
	if err != nil {
		return err
	}
	type folder struct{ key, why string }
	var folders []folder
	names := fs.Args()
	if len(names) == 0 {
		for _, r := range cfg.Repos() {
			names = append(names, r.Config.Name)
		}
	}
	for _, n := range names {
		key, why := n, "key "+n
		if r, ok := cfg.Repo(n); ok {
			key, why = r.Key, "repository "+n
		} else if err := consullock.CheckKey(n); err != nil {
			return usagef("acl-policy: %q is neither a repository of %s nor a lock key: %v", n, path, err)
		}
		if i := slices.IndexFunc(folders, func(f folder) bool { return f.key == key }); i >= 0 {
			folders[i].why += ", " + why
			continue
		}
		folders = append(folders, folder{key, why})
	}
	limits := limitFolders(cfg, names)
	node := consullock.SessionNode(cfg.Consul.SessionNode)
	var b strings.Builder
	whats := []string{}
	for _, f := range folders {
		whats = append(whats, f.why)
	}
	if len(whats) == 0 {
		whats = []string{"no repository"}
	}
	if *readOnly {
		fmt.Fprintf(&b, "# A read-only operator policy for %s (repolock acl-policy -read-only -config %s):\n", strings.Join(whats, "; "), path)
		b.WriteString("# repolock status, nothing that writes; break needs repolock's own policy.\n")
		fmt.Fprintf(&b, "session %q { policy = \"read\" }    # the contenders' sessions: their order, and the holders' fencing tokens\n", node)
		for _, f := range folders {
			fmt.Fprintf(&b, "key_prefix %q { policy = \"read\" }    # %s\n", consullock.RepoPrefix(cfg.Consul.Prefix, f.key), f.why)
		}
		for _, f := range limits {
			fmt.Fprintf(&b, "key_prefix %q { policy = \"read\" }    # %s\n", f.key, f.why)
		}
		_, err = io.WriteString(stdout, b.String())
		return err
	}
	fmt.Fprintf(&b, "# repolock's Consul ACL policy for %s (repolock acl-policy -config %s)\n", strings.Join(whats, "; "), path)
	if cfg.Consul.Datacenter != "" {
		fmt.Fprintf(&b, "# The locks live in datacenter %q: create the token there, as a global token.\n", cfg.Consul.Datacenter)
	}
	fmt.Fprintf(&b, "node %q { policy = \"write\" }    # the session node, registered in the catalog if missing\n", node)
	fmt.Fprintf(&b, "session %q { policy = \"write\" }\n", node)
	fmt.Fprintf(&b, "key %q { policy = \"write\" }    # the epoch key: no grant counts until it is found\n", consullock.EpochKey(cfg.Consul.Prefix))
	for _, f := range folders {
		fmt.Fprintf(&b, "key_prefix %q { policy = \"write\" }    # %s\n", consullock.RepoPrefix(cfg.Consul.Prefix, f.key), f.why)
	}
	for _, f := range limits {
		fmt.Fprintf(&b, "key_prefix %q { policy = \"write\" }    # %s\n", f.key, f.why)
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}

// aclFolder is a KV folder a policy names, and why.
type aclFolder struct{ key, why string }

// limitFolders are the KV folders of the limits that the jobs of the named
// repositories hold (their own and their repository's): a per-host limit's
// folders are all its hosts' (<prefix>/limits/<name>.).
func limitFolders(cfg *plan.Config, repos []string) []aclFolder {
	var out []aclFolder
	add := func(name, why string) {
		l, ok := cfg.Limit(name)
		if !ok {
			return
		}
		key := consullock.LimitPrefix(cfg.Consul.Prefix, l.Name)
		if l.PerHost {
			// Every host's key: <name>.<host> with any host.
			key = strings.TrimSuffix(consullock.LimitPrefix(cfg.Consul.Prefix, plan.PerHostKey(l.Name, "")), "/")
		}
		if i := slices.IndexFunc(out, func(f aclFolder) bool { return f.key == key }); i < 0 {
			out = append(out, aclFolder{key, "limit " + name + " (" + why + ")"})
		}
	}
	for _, n := range repos {
		r, ok := cfg.Repository(n)
		if !ok {
			continue
		}
		for _, l := range r.Limits {
			add(l, "repository "+n)
		}
		for _, j := range cfg.Jobs {
			if j.Repository == n {
				for _, l := range j.Limits {
					add(l, "job "+j.Name)
				}
			}
		}
	}
	return out
}
