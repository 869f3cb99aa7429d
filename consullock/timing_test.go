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
		ahead []Record
		want  bool
	}{
		{Exclusive, nil, true},
		{Exclusive, []Record{sh}, false},
		{Exclusive, []Record{ex}, false},
		{Shared, nil, true},
		{Shared, []Record{sh, sh}, true},
		{Shared, []Record{sh, ex}, false},
		{Shared, []Record{ex, sh}, false},
	}
	for _, c := range cases {
		if got := eligible(c.mode, c.ahead); got != c.want {
			t.Errorf("eligible(%s, %v) = %v, want %v", c.mode, c.ahead, got, c.want)
		}
	}
}
