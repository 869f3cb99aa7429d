package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// errorMarker ends the source line a corpus file's expected diagnostic must
// point at. Files without it (syntax errors, where HCL picks the position)
// only need a diagnostic with a subject in the file.
const errorMarker = "# <-- error"

// corpusCase is one file of testdata/invalid: its first line is
// "# want: TEXT", TEXT being part of the expected diagnostic's summary or
// detail.
type corpusCase struct {
	path       string
	src        []byte
	want       string
	markerLine int // 0 when the file has no marker
}

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 25 {
		t.Fatalf("corpus has %d files, want at least 25", len(paths))
	}
	var cases []corpusCase
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(src), "\n")
		want, found := strings.CutPrefix(first, "# want: ")
		if !found || strings.TrimSpace(want) == "" {
			t.Fatalf("%s: first line must be \"# want: TEXT\", got %q", path, first)
		}
		c := corpusCase{path: path, src: src, want: want}
		for i, line := range strings.Split(string(src), "\n") {
			if strings.HasSuffix(line, errorMarker) {
				c.markerLine = i + 1
			}
		}
		cases = append(cases, c)
	}
	return cases
}

func TestInvalidCorpus(t *testing.T) {
	for _, c := range loadCorpus(t) {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			cfg, files, diags := Load(c.path)
			if !diags.HasErrors() {
				t.Fatalf("no error diagnostics; want one containing %q", c.want)
			}
			if cfg != nil {
				t.Errorf("Load returned a Config together with errors")
			}

			var found *hcl.Diagnostic
			for _, d := range diags {
				if d.Severity == hcl.DiagError && (strings.Contains(d.Summary, c.want) || strings.Contains(d.Detail, c.want)) {
					found = d
					break
				}
			}
			if found == nil {
				t.Fatalf("no diagnostic contains %q; got:\n%s", c.want, render(t, files, diags))
			}
			subj := found.Subject
			if subj == nil {
				t.Fatalf("diagnostic %q has no subject", found.Summary)
			}
			if subj.Filename != c.path || subj.Start.Line < 1 {
				t.Fatalf("subject %s: want filename %s and a line >= 1", subj, c.path)
			}
			if c.markerLine != 0 && subj.Start.Line != c.markerLine {
				t.Errorf("subject %s is on line %d, want line %d (marked %q)", subj, subj.Start.Line, c.markerLine, errorMarker)
			}

			// hcl's text writer announces a location as
			// "  on FILE line N, in BLOCK:" and then prints the source lines
			// around the subject as "%4d: TEXT".
			out := render(t, files, hcl.Diagnostics{found})
			if loc := fmt.Sprintf("on %s line %d", c.path, subj.Start.Line); !strings.Contains(out, loc) {
				t.Errorf("output lacks location %q:\n%s", loc, out)
			}
			lines := strings.Split(string(c.src), "\n")
			srcLine := lines[subj.Start.Line-1]
			if strings.HasSuffix(found.Summary, "in configuration file") {
				// The secret after the attribute name is masked; the rest of
				// the line is checked by TestSecretsAreMasked.
				srcLine = srcLine[:subj.End.Column-1]
			}
			if want := fmt.Sprintf("%4d: %s", subj.Start.Line, srcLine); !strings.Contains(out, want) {
				t.Errorf("output lacks source line %q:\n%s", want, out)
			}
		})
	}
}

func render(t testing.TB, files *Files, diags hcl.Diagnostics) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, files, diags, false); err != nil {
		t.Fatalf("WriteDiagnostics: %v", err)
	}
	return buf.String()
}

func TestSecretsAreMasked(t *testing.T) {
	for file, secret := range map[string]string{
		"token_attribute.hcl":    "d3b07384-d113-4ec6-a358-b0a5c6a3e1f1",
		"password_attribute.hcl": "correct horse battery staple",
	} {
		t.Run(file, func(t *testing.T) {
			_, files, diags := Load(filepath.Join("testdata", "invalid", file))
			if !diags.HasErrors() {
				t.Fatal("want an error")
			}
			for _, color := range []bool{false, true} {
				var buf bytes.Buffer
				if err := WriteDiagnostics(&buf, files, diags, color); err != nil {
					t.Fatal(err)
				}
				out := buf.String()
				if strings.Contains(out, secret) || strings.Contains(out, secret[:8]) {
					t.Errorf("diagnostics show the secret:\n%s", out)
				}
				if !strings.Contains(out, "# <-- error") {
					t.Errorf("masking removed more than the value:\n%s", out)
				}
			}
		})
	}
}
