// Package config loads repolock's HCL configuration: the schema, the
// functions available in expressions, the defaults and every validation that
// can be done without Consul or a backup tool. Problems are reported as
// hcl.Diagnostics whose Subject points at the offending source, so
// "repolock validate" can show the line.
//
// Attribute values are checked against the vocabularies of the packages
// that decide them: tools and unlock policies (plugin), lock modes
// (consullock), durations (timing). What needs a plugin to work out (lock
// keys, mode inference, the repositories a command names) is checked by
// package plan, at the ranges kept in Repository.Ranges and Job.Ranges.
package config

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/repolock/repolock/internal/hooks"
)

// Config is a loaded, defaulted and validated configuration.
type Config struct {
	Consul Consul
	// Lock is the effective top-level lock: LockSettings resolved.
	Lock Lock
	// LockSettings is what the top-level lock block sets, the bottom
	// layer of every job's lock and of `repolock exec -repository`'s.
	LockSettings LockSettings
	Metrics      Metrics       // the top-level metrics block
	Hooks        []hooks.Hook  // top-level hooks, run for every job
	Repositories []*Repository // in file order
	Limits       []*Limit      // in file order
	Jobs         []*Job        // in file order
	Filename     string
}

// Consul overrides the connection settings that consul/api otherwise takes
// from the CONSUL_HTTP_* environment variables. Empty fields are not
// overridden. There is deliberately no token field: configuration files are
// rendered by templates and printed in diagnostics, so tokens come from
// TokenFile or CONSUL_HTTP_TOKEN(_FILE).
type Consul struct {
	Address    string
	Prefix     string // KV prefix, consullock.DefaultPrefix unless set
	TokenFile  string
	Datacenter string
	// SessionAddress is a server agent's HTTP address that creates the
	// sessions, for a Datacenter other than the agent's own: Consul creates
	// a session in another datacenter only through a server agent
	// (consul#6828). "" creates them through Address.
	SessionAddress string
	// TLS overrides CONSUL_CACERT, CONSUL_CAPATH, CONSUL_CLIENT_CERT,
	// CONSUL_CLIENT_KEY and CONSUL_TLS_SERVER_NAME field by field.
	TLS TLS
	// SessionNode is the catalog-only node sessions are bound to; ""
	// leaves it to consullock (consullock.DefaultNode). Never an agent's
	// node, whose deregistration on a graceful agent restart would
	// invalidate the sessions at once.
	SessionNode string
}

// TLS is how repolock verifies the agent and proves itself to it; empty
// fields leave the CONSUL_* variables' values.
type TLS struct {
	CAFile, CAPath, CertFile, KeyFile, ServerName string
}

// Repository is one backup repository guarded by one cluster lock.
type Repository struct {
	Name     string
	Tool     string // a registered plugin's name
	Location string // the tool's repository location; the plugin derives the lock identity from it
	// PasswordFile and PasswordCommand are passed to the tool as they are
	// (at most one is set); the file need not exist when the config loads.
	PasswordFile    string
	PasswordCommand string
	LockKey         string // overrides the identity derived from Location
	UnlockNative    string // one of plugin.UnlockPolicies()
	SharedLocal     bool   // a local Location is on shared storage, so not bound to this host
	Env             map[string]string
	Limits          []string // names of Limits every job of the repository holds a slot of
	DeclRange       hcl.Range
	// Ranges maps each attribute present to its value's source range.
	Ranges map[string]hcl.Range
}

// Job is one command run under a repository's lock.
type Job struct {
	Name       string
	Repository string // name of a Repository in the same Config
	Command    []string
	Mode       string // a consullock mode, or "" to let the plugin infer it
	Dir        string
	Env        map[string]string
	Limits     []string // names of Limits the job holds a slot of, besides its repository's
	// Lock is the job's effective lock: LockSettings resolved.
	Lock Lock
	// LockSettings is the job's lock block over the top-level one.
	LockSettings LockSettings
	// Metrics is the job's metrics block over the top-level one.
	Metrics Metrics
	// Hooks are the top-level hooks and then the job's own.
	Hooks []hooks.Hook
	// ExpectEvery is how often the job should succeed; status flags a
	// repository whose last success is older (0: not checked).
	ExpectEvery time.Duration
	DeclRange   hcl.Range
	// Ranges maps each attribute present to its value's source range.
	Ranges map[string]hcl.Range
}

// Limit caps how many jobs hold it at once, across repositories: a slot
// is a shared holder of its own key under <prefix>/limits/.
type Limit struct {
	Name  string
	Slots int
	// PerHost makes one key per host (<name>.<host>): "at most Slots
	// jobs per host at a time".
	PerHost   bool
	DeclRange hcl.Range
}

// Limit returns the limit of that name.
func (c *Config) Limit(name string) (*Limit, bool) {
	for _, l := range c.Limits {
		if l.Name == name {
			return l, true
		}
	}
	return nil, false
}

// Metrics says where a job's metrics go; empty fields are off.
type Metrics struct {
	Textfile    string // a node_exporter textfile collector directory: one file per job
	Pushgateway string // a Pushgateway URL: one push per job
}

// Job returns the job with the given name.
func (c *Config) Job(name string) (*Job, bool) {
	for _, j := range c.Jobs {
		if j.Name == name {
			return j, true
		}
	}
	return nil, false
}

// Repository returns the repository with the given name.
func (c *Config) Repository(name string) (*Repository, bool) {
	for _, r := range c.Repositories {
		if r.Name == name {
			return r, true
		}
	}
	return nil, false
}

// Files holds the source of loaded configuration files so diagnostics can
// be printed with the offending lines. Secret values written where they do
// not belong (a consul token, a repository password) are masked in it.
type Files struct {
	files map[string]*hcl.File
}

// MaxNesting bounds how deeply brackets, braces, parentheses and template
// interpolations nest in a configuration: HCL's parser is recursive, and a
// config nested 100,000 deep would overflow its stack.
const MaxNesting = 100

// MaxOperators bounds the operators of one top-level attribute or block:
// HCL parses a run of unary operators (!!!…) by recursion, and evaluates a
// chain of binary ones (1+1+…) by recursion too.
const MaxOperators = 10000

// tooDeep scans src with HCL's lexer, which does not recurse, and reports
// the first token that opens a level beyond MaxNesting, or that makes a
// top-level item's operators more than MaxOperators.
func tooDeep(src []byte, filename string) *hcl.Diagnostic {
	depth, ops := 0, 0
	toks, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos) // the parser reports what does not lex
	for _, tok := range toks {
		switch tok.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl, hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc:
			depth++
			if depth > MaxNesting {
				return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Nested too deeply",
					Detail:  fmt.Sprintf("The configuration nests brackets, braces, parentheses, strings or interpolations more than %d deep.", MaxNesting),
					Subject: tok.Range.Ptr()}
			}
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen,
			hclsyntax.TokenTemplateSeqEnd, hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc:
			depth--
		case hclsyntax.TokenNewline:
			if depth <= 0 {
				ops = 0 // the end of a top-level attribute or block
			}
		case hclsyntax.TokenBang, hclsyntax.TokenMinus, hclsyntax.TokenPlus, hclsyntax.TokenStar, hclsyntax.TokenSlash,
			hclsyntax.TokenPercent, hclsyntax.TokenAnd, hclsyntax.TokenOr, hclsyntax.TokenEqualOp, hclsyntax.TokenNotEqual,
			hclsyntax.TokenLessThan, hclsyntax.TokenLessThanEq, hclsyntax.TokenGreaterThan, hclsyntax.TokenGreaterThanEq,
			hclsyntax.TokenQuestion:
			ops++
			if ops > MaxOperators {
				return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Expression too long",
					Detail:  fmt.Sprintf("One attribute or block of the configuration has more than %d operators.", MaxOperators),
					Subject: tok.Range.Ptr()}
			}
		}
	}
	return nil
}

// MaxConfigSize bounds a configuration file: a config is a regular file
// of at most this many bytes (a path to /dev/zero or a FIFO is refused at
// once, never read).
const MaxConfigSize = 8 << 20

// Load reads, parses, decodes, defaults and validates the configuration file
// at path. The Config is nil whenever diags.HasErrors(); Files is never nil
// and is meant for WriteDiagnostics.
func Load(path string) (*Config, *Files, hcl.Diagnostics) {
	src, err := readRegularFile(path, MaxConfigSize)
	if err != nil {
		return nil, &Files{}, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration file",
			Detail:   fmt.Sprintf("%s.", err),
		}}
	}
	return LoadSource(src, path)
}

// LoadSource is Load for configuration already in memory; filename names it
// in diagnostics and is the base for relative paths given to file().
func LoadSource(src []byte, filename string) (*Config, *Files, hcl.Diagnostics) {
	if d := tooDeep(src, filename); d != nil {
		return nil, &Files{}, hcl.Diagnostics{d}
	}
	parser := hclparse.NewParser()
	file, diags := parser.ParseHCL(src, filename)
	files := &Files{files: parser.Files()}
	if diags.HasErrors() || file == nil {
		return nil, files, diags
	}

	ctx := &hcl.EvalContext{Functions: functions(filepath.Dir(filename))}
	cfg, secrets, decodeDiags := decode(file.Body, ctx)
	diags = append(diags, decodeDiags...)
	files.mask(filename, secrets)
	if diags.HasErrors() {
		return nil, files, diags
	}
	cfg.Filename = filename
	return cfg, files, diags
}

// mask overwrites the given ranges of a file's source with '*' (keeping line
// breaks, so every other range still points at the same line and column) in
// the copy used for printing diagnostics.
func (f *Files) mask(filename string, ranges []hcl.Range) {
	file := f.files[filename]
	if len(ranges) == 0 || file == nil {
		return
	}
	src := slices.Clone(file.Bytes)
	for _, r := range ranges {
		start, end := max(r.Start.Byte, 0), min(r.End.Byte, len(src))
		for i := start; i < end; i++ {
			if src[i] != '\n' && src[i] != '\r' {
				src[i] = '*'
			}
		}
	}
	masked := *file
	masked.Bytes = src
	f.files[filename] = &masked
}

// WriteDiagnostics prints diagnostics with the source lines they point at.
// color is meant for terminals: it adds VT100 colours and wraps at 100
// columns; without it lines are not wrapped, which suits log collectors.
func WriteDiagnostics(w io.Writer, files *Files, diags hcl.Diagnostics, color bool) error {
	var m map[string]*hcl.File
	if files != nil {
		m = files.files
	}
	var width uint
	if color {
		width = 100
	}
	tw := hcl.NewDiagnosticTextWriter(w, m, width, color)
	for _, d := range diags {
		// A compiler-style first line (file:line:column) that editors and
		// CI logs link to; hcl's own block follows with the source lines.
		if d.Subject != nil {
			if _, err := fmt.Fprintf(w, "%s:%d:%d: %s\n", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, d.Summary); err != nil {
				return err
			}
		}
		if err := tw.WriteDiagnostic(d); err != nil {
			return err
		}
	}
	return nil
}
