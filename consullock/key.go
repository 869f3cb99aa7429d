package consullock

import (
	"fmt"
	"strings"
)

// Mode of a contender. The grant rule (eligible) is what gives the two
// modes their meaning, so this package owns the vocabulary.
type Mode string

// Lock modes: shared holders run beside each other; an exclusive holder
// runs alone.
const (
	Shared    Mode = "shared"
	Exclusive Mode = "exclusive"
)

// Modes lists the modes in the order they are documented.
func Modes() []string { return []string{string(Shared), string(Exclusive)} }

// ParseMode accepts the spelling used in configuration and on the command line.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case Shared, Exclusive:
		return Mode(s), nil
	}
	return "", fmt.Errorf("unknown lock mode %q (want %q or %q)", s, Shared, Exclusive)
}

// MaxSlots bounds the slots of a semaphore.
const MaxSlots = 10000

// CheckSlots validates the slots of a contender in mode: 0 (no cap), or a
// cap on the shared holders, which only a shared contender can ask for.
func CheckSlots(mode Mode, slots int) error {
	switch {
	case slots < 0 || slots > MaxSlots:
		return fmt.Errorf("slots (%d) must be between 1 and %d", slots, MaxSlots)
	case slots > 0 && mode != Shared:
		return fmt.Errorf("slots (%d) caps the shared holders of a key; an exclusive holder always runs alone", slots)
	}
	return nil
}

// MaxKeyLen bounds a lock key.
const MaxKeyLen = 128

// CheckKey validates a lock key: one KV path segment that no path cleaning
// changes, so that each key owns exactly <prefix>/repos/<key>/. It allows
// [A-Za-z0-9._-] and refuses "." and "..", which HTTP path cleaning would
// resolve as steps (`-key ..` would otherwise land in <prefix>/lock/). The
// error shows an accepted spelling where one can be made.
func CheckKey(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("lock key is empty%s", suggest("repository"))
	case k == "." || k == "..":
		return fmt.Errorf("lock key %q is a path step, not a name%s", k, suggest("repository"))
	case len(k) > MaxKeyLen:
		// Sanitized, a key may be shorter than MaxKeyLen (200 × "/" is "-").
		short := Sanitize(k)
		return fmt.Errorf("lock key is %d bytes long, more than %d%s", len(k), MaxKeyLen, suggest(short[:min(len(short), MaxKeyLen)]))
	}
	for i := 0; i < len(k); i++ {
		if !keyByte(k[i]) {
			return fmt.Errorf("lock key %q has %q at byte %d: use only A-Z a-z 0-9 . _ -%s", k, k[i], i, suggest(Sanitize(k)))
		}
	}
	return nil
}

func suggest(k string) string {
	k = strings.Trim(k, "-")
	if k == "" || k == "." || k == ".." {
		k = "repository"
	}
	return fmt.Sprintf(", for example %q", k)
}

// Sanitize turns any text into key bytes: runs of other bytes become one '-'.
func Sanitize(s string) string {
	var b strings.Builder
	dash := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keyByte(c) {
			b.WriteByte(c)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return b.String()
}

// KeyChars reports whether s is made only of the bytes a key may hold
// (A-Z a-z 0-9 . _ -): the one charset of keys and of the config's names.
func KeyChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !keyByte(s[i]) {
			return false
		}
	}
	return true
}

func keyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
