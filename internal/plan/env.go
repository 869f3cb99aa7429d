package plan

import (
	"strings"

	"github.com/repolock/repolock/plugin"
)

// withheldEnv are variables repolock needs and the command must not see:
// Consul credentials are secrets of the lock, not of the backup (a command
// that needs Consul gets its own token through the job's env).
// NOMAD_TOKEN, a task's workload identity, is repolock's to read Nomad's
// kill_timeout with.
var withheldEnv = map[string]bool{"CONSUL_HTTP_TOKEN": true, "CONSUL_HTTP_TOKEN_FILE": true, "CONSUL_HTTP_AUTH": true, "NOMAD_TOKEN": true}

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
		if strings.HasPrefix(k, "REPOLOCK_") || withheldEnv[k] || (tool != nil && tool.OwnsEnv(k)) {
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
