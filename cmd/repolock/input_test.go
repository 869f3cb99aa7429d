package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/repolock/repolock/internal/testcluster"
)

// Issue 24, rows 6–9: config input that crashed or hung repolock is
// refused at once with a clear message and its documented exit code.
func TestHostileInput(t *testing.T) {
	srv := testcluster.StartServer(t)
	env := srv.Env("")
	dir := t.TempDir()
	fifo := filepath.Join(dir, "config.fifo")
	must(t, syscall.Mkfifo(fifo, 0o600))
	deep := filepath.Join(dir, "deep.hcl")
	must(t, os.WriteFile(deep, []byte("x = "+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+"\n"), 0o644))
	slashes, cyrillic := strings.Repeat("/", 200), strings.Repeat("ключ", 160)
	bangs := filepath.Join(dir, "bangs.hcl")
	must(t, os.WriteFile(bangs, []byte("x = "+strings.Repeat("!", 400000)+"true\n"), 0o644))
	sum := filepath.Join(dir, "sum.hcl")
	must(t, os.WriteFile(sum, []byte("consul {\n  address = 1"+strings.Repeat("+1", 200000)+"\n}\n"), 0o644))
	// Row 11: an agent with Consul's default session_ttl_min (10s) refuses
	// -ttl 5s for good: not retried as "unreachable" for the whole wait.
	strict := testcluster.StartServer(t, testcluster.WithSessionTTLMin("10s"))
	for _, c := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"-ttl 5s below session_ttl_min", strict.Env(""), []string{"exec", "-key", "k", "-ttl", "5s", "-kill-timeout", "1s", "-wait", "1m", "--", "true"}, 69, "session_ttl_min"},
		{"-config /dev/zero", nil, []string{"validate", "-config", "/dev/zero"}, 78, "not a regular file"},
		{"-config a FIFO", nil, []string{"validate", "-config", fifo}, 78, "not a regular file"},
		{"REPOLOCK_CONFIG a FIFO", []string{"REPOLOCK_CONFIG=" + fifo}, []string{"run", "j"}, 78, "not a regular file"},
		{"nested 100,000 deep", nil, []string{"validate", "-config", deep}, 78, "Nested too deeply"},
		{"400,000 unary operators", nil, []string{"validate", "-config", bangs}, 78, "Expression too long"},
		{"a sum of 200,000 terms", nil, []string{"validate", "-config", sum}, 78, "Expression too long"},
		{"exec -key of 200 slashes", nil, []string{"exec", "-key", slashes, "--", "true"}, 64, "bytes long"},
		{"status of 160 × ключ", nil, []string{"status", cyrillic}, 64, "bytes long"},
		{"break of 200 slashes", nil, []string{"break", slashes}, 64, "bytes long"},
		// Rows 12 and 13: flags are validated as the config is.
		{"-renew-interval 1ns", nil, []string{"exec", "-key", "k", "-renew-interval", "1ns", "--", "true"}, 64, "renew_interval (1ns) must be at least"},
		{"-margin 1ns", nil, []string{"exec", "-key", "k", "-margin", "1ns", "--", "true"}, 64, "margin (1ns) must be at least"},
		{"exec -prefix /", nil, []string{"exec", "-key", "k", "-prefix", "/", "--", "true"}, 64, "not a valid KV prefix"},
		{"exec -prefix ..", nil, []string{"exec", "-key", "k", "-prefix", "..", "--", "true"}, 64, "not a valid KV prefix"},
		{"status -prefix ..", nil, []string{"status", "-prefix", ".."}, 64, "not a valid KV prefix"},
		{"exec -session-node ../x", nil, []string{"exec", "-key", "k", "-session-node", "../x", "--", "true"}, 64, "not a valid node name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			began := time.Now()
			code, out := runRepolock(t, append(append([]string{}, env...), c.env...), c.args...)
			took := time.Since(began)
			if code != c.code || !strings.Contains(out, c.want) || strings.Contains(out, "panic") || strings.Contains(out, "fatal error") {
				t.Errorf("exit %d after %s, want %d naming %q:\n%.2000s", code, took, c.code, c.want, out)
			}
			if took > time.Second {
				t.Errorf("took %s, want it refused within a second", took)
			}
		})
	}
}
