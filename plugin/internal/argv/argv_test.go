package argv

import (
	"slices"
	"strings"
	"testing"
)

func TestFirst(t *testing.T) {
	flags := Flags{
		Long:  map[string]bool{"repo": true, "cache-dir": true},
		Short: "ro",
		Bool:  map[string]bool{"verbose": true, "json": true},
	}
	commands := map[string]bool{"backup": true, "prune": true}
	isCommand := func(w string) bool { return commands[w] }

	for _, tc := range []struct {
		args     string
		want     string
		wantRest string
		ok       bool
	}{
		{"backup /d", "backup", "/d", true},
		{"-r X backup", "backup", "", true},
		{"-rX backup", "backup", "", true},
		{"-vr X prune", "prune", "", true}, // bundled bools, then a value flag
		{"-vrX prune", "prune", "", true},  // value attached after bundled bools
		{"--repo X backup", "backup", "", true},
		{"--repo=X backup", "backup", "", true},
		{"--verbose backup", "backup", "", true},
		{"--json=true backup", "backup", "", true},
		{"--cache-dir /c -o a=b prune x", "prune", "x", true},
		{"--new-flag v backup", "backup", "", true},         // unknown flag with a value
		{"--new-bool backup", "backup", "", true},           // unknown flag without one
		{"--new-flag v frobnicate", "frobnicate", "", true}, // "v" is the value, then an unknown subcommand
		{"--new-flag frobnicate", "", "", false},            // only word read as the value
		{"-- backup", "backup", "", true},
		{"-- -weird", "-weird", "", true},
		{"frobnicate", "frobnicate", "", true},
		{"", "", "", false},
		{"-r", "", "", false},
		{"--verbose --json", "", "", false},
		{"- backup", "-", "backup", true},
	} {
		args := strings.Fields(tc.args)
		got, rest, ok := First(args, flags, isCommand)
		if got != tc.want || ok != tc.ok || strings.Join(rest, " ") != tc.wantRest {
			t.Errorf("First(%q) = %q, %q, %v; want %q, %q, %v", tc.args, got, rest, ok, tc.want, tc.wantRest, tc.ok)
		}
	}
}

func TestFirstDoesNotModifyArgs(t *testing.T) {
	args := []string{"-r", "X", "backup", "/d"}
	orig := slices.Clone(args)
	First(args, Flags{Short: "r"}, func(string) bool { return false })
	if !slices.Equal(args, orig) {
		t.Fatalf("args changed to %q", args)
	}
}
