package soak

import (
	"strings"
	"testing"
	"time"
)

func TestParseHeartbeats(t *testing.T) {
	r := Record{ID: 1, Mode: "exclusive"}
	data := "start 42 exclusive 100 1700000000.000100\nbg 101\nhb 1700000000.050000\nhb 1700000000.1000\nend 1700000000.200000\n"
	if err := ParseHeartbeats(&r, []byte(data)); err != nil {
		t.Fatal(err)
	}
	if !r.Started || !r.Completed || r.Token != 42 || len(r.Pids) != 2 || r.Pids[1] != 101 {
		t.Fatalf("parsed %+v", r)
	}
	if got := r.Last.Sub(r.First); got != 199900*time.Microsecond {
		t.Fatalf("span %s, want 199.9ms (the cut line ignored)", got)
	}
	bad := Record{ID: 2, Mode: "shared"}
	if err := ParseHeartbeats(&bad, []byte("start 1 exclusive 5 1700000000.000000\n")); err == nil {
		t.Fatal("a command that saw another mode than asked was not reported")
	}
}

func at(ms int) time.Time { return time.Unix(1700000000, 0).Add(time.Duration(ms) * time.Millisecond) }

func rec(id int, mode string, tok uint64, from, to int) Record {
	return Record{ID: id, Key: "k", Mode: mode, Started: true, Completed: true, Token: tok, First: at(from), Last: at(to)}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name string
		recs []Record
		want []string // violation kinds
	}{
		{"sequential", []Record{rec(1, "exclusive", 1, 0, 10), rec(2, "exclusive", 2, 11, 20)}, nil},
		{"shared beside shared", []Record{rec(1, "shared", 1, 0, 10), rec(2, "shared", 2, 5, 20)}, nil},
		{"exclusive overlaps", []Record{rec(1, "exclusive", 1, 0, 10), rec(2, "shared", 2, 10, 20)}, []string{"overlap"}},
		{"token not increasing", []Record{rec(1, "exclusive", 5, 0, 10), rec(2, "exclusive", 5, 11, 20)}, []string{"token"}},
		{"shared granted first may start later", []Record{rec(1, "shared", 7, 0, 10), rec(2, "shared", 6, 11, 20)}, nil},
		{"exclusive after shared", []Record{rec(1, "shared", 7, 0, 10), rec(2, "exclusive", 6, 11, 20)}, []string{"token"}},
		{"other keys are independent", []Record{rec(1, "exclusive", 1, 0, 10), func() Record { r := rec(2, "exclusive", 1, 5, 20); r.Key = "j"; return r }()}, nil},
		{"exit 0 without end", []Record{func() Record { r := rec(1, "exclusive", 1, 0, 10); r.Completed = false; return r }()}, []string{"dishonest exit"}},
		{"lost and said so", []Record{func() Record { r := rec(1, "exclusive", 1, 0, 10); r.Completed, r.Exit = false, 76; return r }()}, nil},
		{"undocumented code", []Record{func() Record { r := rec(1, "exclusive", 1, 0, 10); r.Exit = 1; return r }()}, []string{"exit code"}},
		{"killed by the soak", []Record{func() Record {
			r := rec(1, "exclusive", 1, 0, 10)
			r.Completed, r.Killed, r.Exit = false, true, -1
			return r
		}()}, nil},
	}
	for _, c := range cases {
		var kinds []string
		for _, v := range Check(c.recs) {
			kinds = append(kinds, v.Kind)
		}
		if strings.Join(kinds, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: violations %v, want %v", c.name, kinds, c.want)
		}
	}
}
