// Package argv finds the subcommand in a command line whose global flags may
// come before it ("restic -r X --verbose backup /d"), without a full flag
// parser for every tool version.
package argv

import "strings"

// Flags describes the global flags that take a separate value. Flags not
// listed are taken to be booleans, with one refinement: see First.
type Flags struct {
	Long  map[string]bool // names without "--", e.g. "repo"
	Short string          // letters of short flags that take a value, e.g. "rpo"
	Bool  map[string]bool // long boolean flags known for sure
}

// First returns the first positional word of args (which excludes the
// program name) and the arguments after it; ok is false if there is none.
//
// A flag that is in neither Flags.Long nor Flags.Bool is ambiguous: it may
// take the next word as its value (a newer tool version, an abbreviation
// argparse accepts). Then the next word counts as the value unless
// isCommand says it is a subcommand, which is the only reading under which
// the command line can be valid.
func First(args []string, f Flags, isCommand func(string) bool) (word string, rest []string, ok bool) {
	unknownPending := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return args[i+1], args[i+2:], true
			}
			return "", nil, false
		case strings.HasPrefix(a, "--"):
			name, _, inline := strings.Cut(a[2:], "=")
			unknownPending = false
			switch {
			case inline:
			case f.Long[name]:
				i++ // the value
			case f.Bool[name]:
			default:
				unknownPending = true
			}
		case strings.HasPrefix(a, "-") && a != "-":
			unknownPending = false
			letters := a[1:]
			for j := 0; j < len(letters); j++ {
				if strings.IndexByte(f.Short, letters[j]) < 0 {
					continue
				}
				if j == len(letters)-1 {
					i++ // "-r X": the value is the next word
				}
				break // "-rX": the rest of the word is the value
			}
		default:
			if unknownPending && !isCommand(a) {
				unknownPending = false
				continue
			}
			return a, args[i+1:], true
		}
	}
	return "", nil, false
}

// Set makes a set of flag names for Flags.Long and Flags.Bool.
func Set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Positionals returns the positional words of args (a subcommand's
// arguments), skipping flags and the values of those in f; every word
// after "--" is positional.
func Positionals(args []string, f Flags) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(out, args[i+1:]...)
		case strings.HasPrefix(a, "--"):
			name, _, inline := strings.Cut(a[2:], "=")
			if !inline && f.Long[name] {
				i++
			}
		case strings.HasPrefix(a, "-") && a != "-":
			if strings.ContainsRune(f.Short, rune(a[len(a)-1])) && !strings.ContainsAny(a[1:len(a)-1], f.Short) {
				i++ // "-e X": the value is the next word
			}
		default:
			out = append(out, a)
		}
	}
	return out
}
