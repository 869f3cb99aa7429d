// Package all registers every built-in plugin with package plugin. Import
// it for its side effect where plugin.Get or plugin.LockKey is used:
//
//	import _ "github.com/repolock/repolock/plugin/all"
//
// The registry lives in package plugin and is filled from here because the
// adapters import plugin for its types: plugin importing them would be a
// cycle. The adapters themselves register nothing, so they stay usable on
// their own (and in tests) without global state.
package all

import (
	"github.com/repolock/repolock/plugin"
	"github.com/repolock/repolock/plugin/borg"
	"github.com/repolock/repolock/plugin/exec"
	"github.com/repolock/repolock/plugin/restic"
)

func init() {
	plugin.Register(&restic.Plugin{})
	plugin.Register(&borg.Plugin{})
	plugin.Register(&exec.Plugin{})
}
