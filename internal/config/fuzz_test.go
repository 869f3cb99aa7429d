package config

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadSource feeds arbitrary bytes to the loader and the diagnostic
// writer. Beyond not panicking, a configuration that loads without errors
// must be internally consistent: every lock satisfies the timing relation
// and every job refers to a declared repository.
func FuzzLoadSource(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*", "*.hcl"))
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, filepath.Join("..", "..", "config.hcl"))
	for _, path := range seeds {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}

	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, files, diags := LoadSource(src, "fuzz.hcl")
		if files == nil {
			t.Fatal("nil Files")
		}
		for _, color := range []bool{false, true} {
			if err := WriteDiagnostics(io.Discard, files, diags, color); err != nil {
				t.Fatalf("WriteDiagnostics: %v", err)
			}
		}
		if diags.HasErrors() {
			if cfg != nil {
				t.Fatal("Config returned together with errors")
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil Config without errors")
		}
		if err := cfg.Lock.Validate(); err != nil {
			t.Fatalf("top-level lock accepted but invalid: %v", err)
		}
		for _, j := range cfg.Jobs {
			if err := j.Lock.Validate(); err != nil {
				t.Fatalf("job %q lock accepted but invalid: %v", j.Name, err)
			}
			if _, ok := cfg.Repository(j.Repository); !ok {
				t.Fatalf("job %q refers to unknown repository %q", j.Name, j.Repository)
			}
			if len(j.Command) == 0 || j.Command[0] == "" {
				t.Fatalf("job %q accepted with command %q", j.Name, j.Command)
			}
		}
	})
}
