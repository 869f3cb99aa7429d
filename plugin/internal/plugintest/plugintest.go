// Package plugintest holds the table checks every plugin's tests share.
package plugintest

import (
	"errors"
	"strings"
	"testing"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/plugin"
)

// CheckModes runs p.Mode over cases, command lines (split on spaces) with
// the mode each implies: an inferable command gives its mode, one mapped to
// "" an error wrapping plugin.ErrModeNotInferred.
func CheckModes(t *testing.T, p plugin.Plugin, cases map[string]consullock.Mode) {
	t.Helper()
	for args, want := range cases {
		got, err := p.Mode(strings.Fields(args))
		if want == "" {
			if err == nil || !errors.Is(err, plugin.ErrModeNotInferred) {
				t.Errorf("Mode(%q) = %q, %v; want an error wrapping ErrModeNotInferred", args, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("Mode(%q) = %q, %v; want %q", args, got, err, want)
		}
	}
}
