package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 3 acceptance 1 through the CLI: every broken config of the corpus
// exits 78 with file:line:column and the offending source line.
func TestValidateBrokenCorpus(t *testing.T) {
	files, err := filepath.Glob("../../internal/config/testdata/invalid/*.hcl")
	if err != nil || len(files) < 25 {
		t.Fatalf("corpus has %d files (%v), want at least 25", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			must(t, err)
			p := start(t, nil, "validate", "-config", f)
			code := p.wait(t, 10*time.Second)
			out := p.stderr.String()
			if code != 78 {
				t.Fatalf("exit %d, want 78:\n%s", code, out)
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Fatalf("panic:\n%s", out)
			}
			if !strings.Contains(out, f+":") {
				t.Fatalf("no file:line:column location:\n%s", out)
			}
			for i, line := range strings.Split(string(src), "\n") {
				if strings.Contains(line, "# <-- error") {
					loc := fmt.Sprintf("%s:%d:", f, i+1)
					code := strings.TrimSpace(strings.Split(line, "#")[0])
					if name, _, ok := strings.Cut(code, "="); ok && (strings.TrimSpace(name) == "token" || strings.TrimSpace(name) == "password") {
						code = name + "= **" // a secret's value is masked in the output
					}
					if !strings.Contains(out, loc) || !strings.Contains(out, code) {
						t.Errorf("want location %s and the source line %q:\n%s", loc, line, out)
					}
				}
			}
		})
	}
}

// Issue 3 acceptance 2 through the CLI: spellings of one repository share
// one lock key in `repolock validate -json`; a password never shows.
func TestValidateJSONSharesKeys(t *testing.T) {
	cfg := writeConfig(t, `
repository "a1" {
  tool = "restic"
  location = "sftp:backup@NAS:/srv/restic/photos/"
}
repository "a2" {
  tool = "restic"
  location = "sftp://other@nas:22//srv/restic/photos"
}
repository "b1" {
  tool = "restic"
  location = "rest:https://user:hunter2-secret@Backup.example.com:443/photos/"
}
repository "b2" {
  tool = "restic"
  location = "rest:https://backup.example.com/photos"
}
repository "c1" {
  tool = "borg"
  location = "ssh://borg@host.example.com:22/srv/borg/main"
}
repository "c2" {
  tool = "borg"
  location = "borg@HOST.example.com:/srv/borg/main"
}
repository "d1" {
  tool = "borg"
  location = "borg@host.example.com:main"
}
repository "d2" {
  tool = "borg"
  location = "other@host.example.com:main"
}
job "j" {
  repository = "a1"
  command = ["restic", "check"]
}
`)
	p := start(t, nil, "validate", "-config", cfg, "-json")
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderr)
	}
	out := p.stderr.String()
	if strings.Contains(out, "hunter2-secret") {
		t.Fatal("a password appears in validate's output")
	}
	var v struct {
		Repositories []struct {
			Name    string `json:"name"`
			LockKey string `json:"lock_key"`
		} `json:"repositories"`
		Jobs []struct {
			Name string `json:"name"`
			Mode string `json:"mode"`
		} `json:"jobs"`
	}
	must(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &v))
	keys := map[string]string{}
	for _, r := range v.Repositories {
		keys[r.Name] = r.LockKey
	}
	for _, pair := range [][2]string{{"a1", "a2"}, {"b1", "b2"}, {"c1", "c2"}} {
		if keys[pair[0]] == "" || keys[pair[0]] != keys[pair[1]] {
			t.Errorf("%s and %s name one repository but lock %q and %q", pair[0], pair[1], keys[pair[0]], keys[pair[1]])
		}
	}
	if keys["d1"] == keys["d2"] {
		t.Errorf("relative paths of different users share the key %q", keys["d1"])
	}
	if len(v.Jobs) != 1 || v.Jobs[0].Mode != "exclusive" {
		t.Errorf("restic check must lock exclusively: %+v", v.Jobs)
	}
}

// The documented example at the root validates.
func TestValidateRootExample(t *testing.T) {
	p := start(t, nil, "validate", "-config", "../../config.hcl")
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderr)
	}
}

// The README's configuration example is valid too.
func TestValidateReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	must(t, err)
	_, rest, ok := strings.Cut(string(readme), "```hcl\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README has no ```hcl block")
	}
	cfg := writeConfig(t, block)
	p := start(t, nil, "validate", "-config", cfg)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("README example: exit %d:\n%s", code, p.stderr)
	}
}

// Issue 3 acceptance 2 through the CLI: every pair of the plugins' identity
// table whose sides are on this host goes through `repolock validate
// -json`; the keys must agree exactly when the table says "same", and no
// credential may appear in the output.
func TestValidateJSONIdentityPairs(t *testing.T) {
	wd := t.TempDir()
	data, err := os.ReadFile("../../plugin/all/testdata/identity_pairs.tsv")
	must(t, err)
	type side struct{ tool, loc, shared string }
	type row struct {
		name string
		a, b side
		same bool
	}
	var rows []row
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(strings.ReplaceAll(line, "{wd}", wd), "\t")
		if len(f) != 10 {
			t.Fatalf("bad row %q", line)
		}
		if f[3] != "node1" || f[7] != "node1" {
			continue // the CLI binds local paths to this machine's host name only
		}
		rows = append(rows, row{f[9], side{f[1], f[2], f[4]}, side{f[5], f[6], f[8]}, f[0] == "true"})
	}
	if len(rows) < 30 {
		t.Fatalf("%d usable pairs, want at least 30", len(rows))
	}
	var cfg strings.Builder
	for i, r := range rows {
		for j, s := range []side{r.a, r.b} {
			fmt.Fprintf(&cfg, "repository \"p%d-%d\" {\n  tool = %q\n  location = %q\n  shared_local = %s\n}\n", i, j, s.tool, s.loc, s.shared)
		}
	}
	// {wd} is the config's directory, which relative locations are
	// relative to; validate runs from elsewhere, which must not matter.
	path := filepath.Join(wd, "config.hcl")
	must(t, os.WriteFile(path, []byte(cfg.String()), 0o644))
	p := startIn(t, t.TempDir(), nil, "validate", "-config", path, "-json")
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderr)
	}
	out := p.stderr.String()
	var v struct {
		Repositories []struct {
			Name    string `json:"name"`
			LockKey string `json:"lock_key"`
		} `json:"repositories"`
	}
	must(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &v))
	keys := map[string]string{}
	for _, r := range v.Repositories {
		keys[r.Name] = r.LockKey
	}
	for i, r := range rows {
		ka, kb := keys[fmt.Sprintf("p%d-0", i)], keys[fmt.Sprintf("p%d-1", i)]
		if ka == "" || kb == "" {
			t.Errorf("%s: missing key in validate output", r.name)
		} else if (ka == kb) != r.same {
			t.Errorf("%s: keys %q and %q, want same = %v", r.name, ka, kb, r.same)
		}
	}
	for _, secret := range []string{"s3cr3t", ":x@", ":y@"} {
		if strings.Contains(out, secret) {
			t.Errorf("validate output contains a credential (%q)", secret)
		}
	}
	t.Logf("%d pairs checked through the CLI", len(rows))
}
