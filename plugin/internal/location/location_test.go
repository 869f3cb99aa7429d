package location

import (
	"strings"
	"testing"
)

func TestHost(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"NAS", "nas"},
		{"nas.example.org.", "nas.example.org"},
		{"10.0.0.5", "10.0.0.5"},
		{"[::1]", "[::1]"},
		{"::1", "[::1]"},
		{"[0:0:0:0:0:0:0:1]", "[::1]"},
		{"[FE80::A]", "[fe80::a]"},
		{"", ""},
		{"[::1", ""},
		{"[nas]", ""},
		{"a/b", ""},
		{"u:p@h", ""},
		{".", ""},
	} {
		got, err := Host(tc.in)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("Host(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if err != nil && tc.in != "" && strings.Contains(err.Error(), tc.in) {
			t.Errorf("Host(%q) error %q quotes its input", tc.in, err)
		}
	}
}

func TestPort(t *testing.T) {
	for _, tc := range []struct {
		in      string
		def     int
		want    string
		wantErr bool
	}{
		{"", 22, "", false},
		{"22", 22, "", false},
		{"022", 22, "", false},
		{"2222", 22, "2222", false},
		{"443", 0, "443", false},
		{"0", 22, "", true},
		{"65536", 22, "", true},
		{"ssh", 22, "", true},
	} {
		got, err := Port(tc.in, tc.def)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("Port(%q, %d) = %q, %v; want %q, error %v", tc.in, tc.def, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestCleanRooted(t *testing.T) {
	for in, want := range map[string]string{
		"":           "",
		"/":          "",
		"a/b/":       "a/b",
		"/a//b/./c/": "a/b/c",
		"../../a":    "a",
		"a/../..":    "",
	} {
		if got := CleanRooted(in); got != want {
			t.Errorf("CleanRooted(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLocal(t *testing.T) {
	for _, tc := range []struct {
		name          string
		p, dir, host  string
		shared        bool
		want, wantErr string
	}{
		{"absolute, bound", "/srv/restic/", "", "Node1", false, "restic+local://node1/srv/restic", ""},
		{"absolute, shared", "/srv//restic/.", "", "node1", true, "restic+local:///srv/restic", ""},
		{"relative to dir", "repo/../photos", "/data", "node1", false, "restic+local://node1/data/photos", ""},
		{"dot-dot above dir", "../r", "/data", "node1", false, "restic+local://node1/r", ""},
		{"no host to bind to", "/srv/r", "", "", false, "", "host"},
		{"tilde is not expanded", "~/repo", "/data", "node1", false, "", "'~'"},
		{"relative dir", "r", "data", "node1", false, "", "not absolute"},
		{"empty", "", "/data", "node1", false, "", "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Local("restic", tc.p, tc.dir, tc.host, tc.shared)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Local = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Local = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// A relative path is relative to dir, the config's directory; never to
// the working directory, so without dir it is refused.
func TestLocalRelativeToDir(t *testing.T) {
	t.Chdir(t.TempDir())
	if got, err := Local("borg", "repo", "/etc/repolock", "h", false); err != nil || got != "borg+local://h/etc/repolock/repo" {
		t.Fatalf("Local(repo, /etc/repolock) = %q, %v", got, err)
	}
	if got, err := Local("borg", "repo", "", "h", false); err == nil {
		t.Fatalf("Local(repo) without a dir = %q, want an error", got)
	}
}

func TestIndexOutsideBrackets(t *testing.T) {
	for _, tc := range []struct {
		s    string
		c    byte
		want int
	}{
		{"host:path", ':', 4},
		{"[::1]:path", ':', 5},
		{"[::1]/p", '/', 5},
		{"nohost", ':', -1},
		{"[::1", ':', -1},
	} {
		if got := IndexOutsideBrackets(tc.s, tc.c); got != tc.want {
			t.Errorf("IndexOutsideBrackets(%q, %q) = %d, want %d", tc.s, tc.c, got, tc.want)
		}
	}
}

func TestParseURLNeverQuotesInput(t *testing.T) {
	for _, s := range []string{
		"https://u:s3cr3t%zz@h/p",   // bad escape
		"https://u:s3cr3t#x@h/p",    // fragment swallows the rest
		"https://u:s3cr3t?x@h/p",    // query swallows the rest
		"https://u:s3cr3t@h/p?x=1",  // query
		"https://u:12#s3cr3t@h/p",   // digit password would pass as a port
		"http://[::1:s3cr3t@h/path", // broken brackets
	} {
		u, err := ParseURL(s)
		if err == nil {
			t.Errorf("ParseURL(%q) = %v, want an error", s, u)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("ParseURL(%q) error %q quotes the password", s, err)
		}
	}
}
