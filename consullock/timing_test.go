package consullock

import (
	"strings"
	"testing"
)

func TestCheckKey(t *testing.T) {
	ok := []string{"photos", "restic-local-node1-srv-a-1a2b3c4d5e", "A.b_c-9", strings.Repeat("k", MaxKeyLen)}
	for _, k := range ok {
		if err := CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", k, err)
		}
	}
	bad := map[string]string{
		"":                               "empty",
		".":                              "path step",
		"..":                             "path step",
		"a b":                            `for example "a-b"`,
		"a/b":                            `for example "a-b"`,
		"a\x01b":                         "use only",
		"a\tb":                           "use only",
		"a/":                             `for example "a"`,
		strings.Repeat("k", MaxKeyLen+1): "bytes long",
	}
	for k, want := range bad {
		err := CheckKey(k)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckKey(%q) = %v, want an error containing %q", k, err, want)
		}
	}
}

func TestEligible(t *testing.T) {
	sh := Record{Mode: Shared}
	ex := Record{Mode: Exclusive}
	cases := []struct {
		mode  Mode
		slots int
		ahead []Record
		want  bool
	}{
		{Exclusive, 0, nil, true},
		{Exclusive, 0, []Record{sh}, false},
		{Exclusive, 0, []Record{ex}, false},
		{Exclusive, 3, []Record{sh}, false},
		{Shared, 0, nil, true},
		{Shared, 0, []Record{sh, sh}, true},
		{Shared, 0, []Record{sh, ex}, false},
		{Shared, 0, []Record{ex, sh}, false},
		{Shared, 3, []Record{sh, sh}, true},
		{Shared, 3, []Record{sh, sh, sh}, false},
		{Shared, 1, nil, true},
		{Shared, 1, []Record{sh}, false},
		{Shared, 3, []Record{ex}, false},
	}
	for _, c := range cases {
		if got := eligible(c.mode, c.slots, c.ahead); got != c.want {
			t.Errorf("eligible(%s, %d slots, %v) = %v, want %v", c.mode, c.slots, c.ahead, got, c.want)
		}
	}
}

// Issue 24 row 9: a key over MaxKeyLen bytes that sanitizes shorter (200
// slashes, 160 × "ключ") is refused with an error, not a panic.
func TestCheckKeyLongSanitizesShorter(t *testing.T) {
	for _, k := range []string{strings.Repeat("/", 200), strings.Repeat("ключ", 160), strings.Repeat("a", 300)} {
		err := CheckKey(k)
		if err == nil || !strings.Contains(err.Error(), "bytes long") {
			t.Errorf("CheckKey(%d bytes) = %v, want too long", len(k), err)
		}
	}
}
