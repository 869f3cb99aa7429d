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

func TestPositionals(t *testing.T) {
	flags := Flags{
		Long:  Set("keep-last", "exclude"),
		Short: "ed",
		Bool:  Set("stats"), // Positionals needs no Bool: unknown flags take no value
	}
	for _, tc := range []struct {
		args string
		want []string
	}{
		{"", nil},
		{"/srv/b /data", []string{"/srv/b", "/data"}},
		{"--keep-last 3 /srv/b", []string{"/srv/b"}},  // the value is skipped
		{"/srv/b --keep-last 3", []string{"/srv/b"}},  // after the positional, too
		{"--keep-last=3 /srv/b", []string{"/srv/b"}},  // inline value
		{"--keep-last", nil},                          // value missing at the end
		{"--stats /srv/b", []string{"/srv/b"}},        // known boolean
		{"--other v /srv/b", []string{"v", "/srv/b"}}, // unknown long flag: no value
		{"-e x /srv/b", []string{"/srv/b"}},           // short flag, separate value
		{"-ex /srv/b", []string{"/srv/b"}},            // short flag, attached value
		{"-d7 /srv/b", []string{"/srv/b"}},            // attached digits
		{"-ve x /srv/b", []string{"/srv/b"}},          // bundle ending in a value flag
		{"-ev /srv/b", []string{"/srv/b"}},            // "v" is -e's value
		{"-ee /srv/b", []string{"/srv/b"}},            // the second e is the first's value
		{"-e", nil},                                   // value missing at the end
		{"-v /srv/b", []string{"/srv/b"}},             // unknown short flag: no value
		{"- /srv/b", []string{"-", "/srv/b"}},         // "-" (stdin) is positional
		{"a -- -e b", []string{"a", "-e", "b"}},       // everything after -- is positional
		{"-x -- --", []string{"--"}},                  // including a second --
		{"-- ", nil},                                  // nothing after --
		{"--keep-last 3 -- --keep-last", []string{"--keep-last"}},
	} {
		args := strings.Fields(tc.args)
		orig := slices.Clone(args)
		got := Positionals(args, flags)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Positionals(%q) = %q, want %q", tc.args, got, tc.want)
		}
		if !slices.Equal(args, orig) {
			t.Errorf("Positionals(%q) changed its input to %q", tc.args, args)
		}
	}
}

func TestSet(t *testing.T) {
	s := Set("repo", "cache-dir", "repo")
	if len(s) != 2 || !s["repo"] || !s["cache-dir"] || s["verbose"] {
		t.Fatalf("Set = %v, want exactly repo and cache-dir", s)
	}
	if s := Set(); s == nil || len(s) != 0 {
		t.Fatalf("Set() = %#v, want an empty, usable map", s)
	}
}
