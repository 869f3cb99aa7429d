package plan

import (
	"strings"

	"github.com/repolock/repolock/plugin"
)

// withheldEnv are variables repolock needs and the command must not see:
// Consul's credentials and TLS settings are the lock's, not the backup's
// (a command that talks to Consul itself, a `consul snapshot save` job,
// sets what it needs in the job's env). CONSUL_TOKEN is what Nomad 1.7+
// sets for a task's Consul workload identity. NOMAD_TOKEN, a task's
// workload identity, is repolock's to read Nomad's kill_timeout with.
// CONSUL_HTTP_ADDR, the agent's address, is no secret and is passed on.
var withheldEnv = map[string]bool{
	"CONSUL_TOKEN": true, "CONSUL_HTTP_TOKEN": true, "CONSUL_HTTP_TOKEN_FILE": true, "CONSUL_HTTP_AUTH": true,
	"CONSUL_CLIENT_CERT": true, "CONSUL_CLIENT_KEY": true, "CONSUL_CACERT": true, "CONSUL_CAPATH": true,
	"CONSUL_TLS_SERVER_NAME": true, "NOMAD_TOKEN": true,
}

// withheld reports whether the command must not inherit the variable k:
// withheldEnv, and every CONSUL_HTTP_SSL* (CONSUL_HTTP_SSL,
// CONSUL_HTTP_SSL_VERIFY).
func withheld(k string) bool { return withheldEnv[k] || strings.HasPrefix(k, "CONSUL_HTTP_SSL") }

// Environment is the command's environment, in the one order repolock
// uses, each later layer winning over the earlier ones:
//
//  1. repolock's own environment, without REPOLOCK_* (set afresh), the
//     Consul credentials, and the variables the tool owns (tool.OwnsEnv),
//     so an inherited RESTIC_REPOSITORY cannot point the tool elsewhere;
//  2. the repository's env, then the job's env (config has refused
//     tool-owned and REPOLOCK_* names in both);
//  3. the tool's own variables (toolEnv, from the plugin);
//  4. REPOLOCK_*, which run appends once the lock is granted.
//
// Each key appears once: with duplicates, programs disagree on which counts.
func Environment(inherited []string, tool plugin.Plugin, repoEnv, jobEnv map[string]string, toolEnv []string) []string {
	var base []string
	for _, kv := range inherited {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "REPOLOCK_") || withheld(k) || (tool != nil && tool.OwnsEnv(k)) {
			continue
		}
		base = append(base, kv)
	}
	return merge(base, plugin.SortedEnv(repoEnv), plugin.SortedEnv(jobEnv), toolEnv)
}

// merge overlays KEY=VALUE lists; a later list wins, in the place where
// the key first appeared.
func merge(layers ...[]string) []string {
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
