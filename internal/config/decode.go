package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/hooks"
	"github.com/repolock/repolock/internal/timing"
	"github.com/repolock/repolock/plugin"
	_ "github.com/repolock/repolock/plugin/all" // the tools a repository may name
)

// The HCL schema. gohcl decodes each block body into these structs;
// optional attributes are pointers so that an absent or null attribute can
// be told apart from a value, and durations stay strings until decode
// parses them with the attribute's range at hand.

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "consul"},
		{Type: "lock"},
		{Type: "repository", LabelNames: []string{"name"}},
		{Type: "job", LabelNames: []string{"name"}},
		{Type: "metrics"},
		{Type: "hook", LabelNames: []string{"name"}},
		{Type: "limit", LabelNames: []string{"name"}},
	},
}

type limitBody struct {
	Slots   int      `hcl:"slots"`
	PerHost *bool    `hcl:"per_host,optional"`
	Body    hcl.Body `hcl:",body"`
}

type consulBody struct {
	Address     *string `hcl:"address,optional"`
	Prefix      *string `hcl:"prefix,optional"`
	TokenFile   *string `hcl:"token_file,optional"`
	Datacenter  *string `hcl:"datacenter,optional"`
	SessionAddr *string `hcl:"session_address,optional"`
	SessionNode *string `hcl:"session_node,optional"`
	CAFile      *string `hcl:"ca_file,optional"`
	CAPath      *string `hcl:"ca_path,optional"`
	CertFile    *string `hcl:"cert_file,optional"`
	KeyFile     *string `hcl:"key_file,optional"`
	ServerName  *string `hcl:"tls_server_name,optional"`
	// Token is accepted by the schema only so it can be rejected with an
	// explanation instead of "unsupported argument"; it is never evaluated.
	Token *hcl.Attribute `hcl:"token,optional"`
	Body  hcl.Body       `hcl:",body"`
}

type lockBody struct {
	TTL           *string   `hcl:"ttl,optional"`
	Wait          *string   `hcl:"wait,optional"`
	OnBusy        *string   `hcl:"on_busy,optional"`
	KillSignal    *string   `hcl:"kill_signal,optional"`
	KillTimeout   *string   `hcl:"kill_timeout,optional"`
	RenewInterval *string   `hcl:"renew_interval,optional"`
	Margin        *string   `hcl:"margin,optional"`
	DefRange      hcl.Range `hcl:",def_range"`
	Body          hcl.Body  `hcl:",body"`
}

type hookBody struct {
	On      []string          `hcl:"on"`
	Command []string          `hcl:"command"`
	Env     map[string]string `hcl:"env,optional"`
	Timeout *string           `hcl:"timeout,optional"`
	Body    hcl.Body          `hcl:",body"`
}

// hookBlock is a job's hook block as gohcl decodes it, label included.
type hookBlock struct {
	Name string   `hcl:"name,label"`
	Body hcl.Body `hcl:",remain"`
}

type metricsBody struct {
	Textfile    *string  `hcl:"textfile,optional"`
	Pushgateway *string  `hcl:"pushgateway,optional"`
	Body        hcl.Body `hcl:",body"`
}

type repositoryBody struct {
	Tool            string            `hcl:"tool"`
	Location        string            `hcl:"location"`
	PasswordFile    *string           `hcl:"password_file,optional"`
	PasswordCommand *string           `hcl:"password_command,optional"`
	LockKey         *string           `hcl:"lock_key,optional"`
	UnlockNative    *string           `hcl:"unlock_native,optional"`
	SharedLocal     *bool             `hcl:"shared_local,optional"`
	Env             map[string]string `hcl:"env,optional"`
	Limits          []string          `hcl:"limits,optional"`
	// Password exists, like consulBody.Token, only to be rejected.
	Password *hcl.Attribute `hcl:"password,optional"`
	Body     hcl.Body       `hcl:",body"`
}

type jobBody struct {
	Repository string            `hcl:"repository"`
	Command    []string          `hcl:"command"`
	Mode       *string           `hcl:"mode,optional"`
	Dir        *string           `hcl:"dir,optional"`
	Env        map[string]string `hcl:"env,optional"`
	Limits     []string          `hcl:"limits,optional"`
	Lock       *lockBody         `hcl:"lock,block"`
	Metrics    *metricsBody      `hcl:"metrics,block"`
	Hooks      []hookBlock       `hcl:"hook,block"`
	// ExpectEvery is a duration, parsed with its range at hand.
	ExpectEvery *string  `hcl:"expect_every,optional"`
	Body        hcl.Body `hcl:",body"`
}

// readable checks that path can be opened for reading (a file) or listed
// (a directory, for ca_path).
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// validName is what repository and job names, the session node and each
// prefix segment may be: they end up in Consul KV paths, environment
// variables and command lines, so they take the bytes of a lock key
// (consullock owns that set: a name that Sanitize leaves unchanged has no
// other byte) and cannot be "." or "..", which path handling would
// collapse. Unlike a key, a name has no length limit.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && consullock.KeyChars(s)
}

// decoder accumulates diagnostics and the ranges of secret values to mask.
type decoder struct {
	ctx     *hcl.EvalContext
	diags   hcl.Diagnostics
	secrets []hcl.Range
}

func decode(body hcl.Body, ctx *hcl.EvalContext) (*Config, []hcl.Range, hcl.Diagnostics) {
	d := &decoder{ctx: ctx}
	content, diags := body.Content(rootSchema)
	d.diags = append(d.diags, diags...)
	cfg := &Config{
		Consul: Consul{Prefix: consullock.DefaultPrefix},
		Lock:   DefaultLock(),
	}
	if content == nil {
		return cfg, nil, d.diags
	}
	blocks := content.Blocks.ByType()

	if b := d.single(blocks["consul"]); b != nil {
		d.consul(b, &cfg.Consul)
	}
	topLockOK := d.topLock(d.single(blocks["lock"]), cfg)
	if b := d.single(blocks["metrics"]); b != nil {
		cfg.Metrics = d.metrics(b.Body, Metrics{})
	}
	for _, b := range blocks["hook"] {
		if h, ok := d.hook(b.Labels[0], b.Body, b.DefRange); ok {
			cfg.Hooks = append(cfg.Hooks, h)
		}
	}

	// Limits come first so that repositories and jobs may name limits
	// declared later in the file; repositories before jobs likewise.
	limitsDeclared := map[string]*hcl.Block{}
	for _, b := range blocks["limit"] {
		if !d.label(b, "limit", limitsDeclared) {
			continue
		}
		if l := d.limit(b); l != nil {
			cfg.Limits = append(cfg.Limits, l)
		}
	}
	var limitNames []string
	for name := range limitsDeclared {
		limitNames = append(limitNames, name)
	}
	sort.Strings(limitNames)

	declared := map[string]*hcl.Block{}
	var repoNames []string
	for _, b := range blocks["repository"] {
		if !d.label(b, "repository", declared) {
			continue
		}
		repoNames = append(repoNames, b.Labels[0])
		if r := d.repository(b, limitNames); r != nil {
			cfg.Repositories = append(cfg.Repositories, r)
		}
	}

	jobsDeclared := map[string]*hcl.Block{}
	for _, b := range blocks["job"] {
		if !d.label(b, "job", jobsDeclared) {
			continue
		}
		if j := d.job(b, cfg, repoNames, limitNames, topLockOK); j != nil {
			cfg.Jobs = append(cfg.Jobs, j)
		}
	}
	return cfg, d.secrets, d.diags
}

// topLock decodes the top-level lock block (b, nil if absent) into
// cfg.LockSettings and cfg.Lock. It reports whether the block is valid: a
// broken one is not laid under jobs, so that they are not checked against
// guessed settings.
func (d *decoder) topLock(b *hcl.Block, cfg *Config) bool {
	if b == nil {
		return true
	}
	lb, _, decodedOK := decodeBlock[lockBody](d, b.Body)
	lb.DefRange = b.DefRange
	top, ok := d.lockBlock(lb)
	if !ok || !decodedOK {
		return false
	}
	cfg.LockSettings = top.LockSettings
	cfg.Lock = top.Resolve()
	return d.checkTiming(cfg.Lock, top, "")
}

// decodeBlock decodes a block body into a T, records the diagnostics, and
// returns the value ranges of the attributes present; ok is false when the
// decode had errors.
func decodeBlock[T any](d *decoder, body hcl.Body) (*T, map[string]hcl.Range, bool) {
	v := new(T)
	ok := d.decoded(gohcl.DecodeBody(body, d.ctx, v))
	return v, valueRanges(body, v), ok
}

// decoded records the diagnostics of a gohcl decode and reports whether
// they hold errors. An expression that failed (an unset env(), a missing
// file) evaluates to an unknown value, and gohcl then adds "value must be
// known" for the same spot; with no variables in scope an unknown value
// only ever comes from such an earlier error, so that echo is dropped.
func (d *decoder) decoded(diags hcl.Diagnostics) bool {
	echo := func(diag *hcl.Diagnostic) bool {
		return diag.Summary == "Unsuitable value type" && strings.HasSuffix(diag.Detail, "value must be known")
	}
	hasCause := slices.ContainsFunc(diags, func(diag *hcl.Diagnostic) bool {
		return diag.Severity == hcl.DiagError && !echo(diag)
	})
	for _, diag := range diags {
		if hasCause && echo(diag) {
			continue
		}
		d.diags = append(d.diags, diag)
	}
	return !diags.HasErrors()
}

// single returns the only block of a kind that may appear once, reporting
// any repetition at the repeated block.
func (d *decoder) single(blocks hcl.Blocks) *hcl.Block {
	if len(blocks) == 0 {
		return nil
	}
	for _, b := range blocks[1:] {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Duplicate %s block", b.Type),
			Detail: fmt.Sprintf("Only one top-level %s block is allowed; the first is on line %d.",
				b.Type, blocks[0].DefRange.Start.Line),
			Subject: b.TypeRange.Ptr(),
			Context: b.DefRange.Ptr(),
		})
	}
	return blocks[0]
}

// label checks a repository or job name and records it, reporting a
// duplicate at the second declaration. It returns false if the block should
// be skipped.
func (d *decoder) label(b *hcl.Block, kind string, seen map[string]*hcl.Block) bool {
	name := b.Labels[0]
	if first, dup := seen[name]; dup {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Duplicate %s %q", kind, name),
			Detail: fmt.Sprintf("A %s named %q is already declared on line %d; names must be unique.",
				kind, name, first.DefRange.Start.Line),
			Subject: b.LabelRanges[0].Ptr(),
			Context: b.DefRange.Ptr(),
		})
		return false
	}
	seen[name] = b
	if !validName(name) {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s name", kind),
			Detail: fmt.Sprintf("%q is not a valid %s name: use letters, digits, '.', '_' and '-' (names appear in Consul keys and on command lines).",
				name, kind),
			Subject: b.LabelRanges[0].Ptr(),
			Context: b.DefRange.Ptr(),
		})
	}
	return true
}

func (d *decoder) consul(b *hcl.Block, c *Consul) {
	cb, ranges, decodedOK := decodeBlock[consulBody](d, b.Body)
	if cb.Token != nil {
		d.secrets = append(d.secrets, cb.Token.Expr.Range())
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Consul token in configuration file",
			Detail: "A Consul ACL token must not be written into the configuration: it is rendered by templates, " +
				"printed by \"repolock validate\" and may end up in logs. Use token_file = \"/path/to/token\" " +
				"or the CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE environment variables.",
			Subject: cb.Token.NameRange.Ptr(),
			Context: cb.Token.Range.Ptr(),
		})
	}
	if !decodedOK {
		return
	}
	c.Address = deref(cb.Address)
	c.TokenFile = deref(cb.TokenFile)
	c.Datacenter = deref(cb.Datacenter)
	c.SessionAddress = deref(cb.SessionAddr)
	if c.SessionAddress != "" && c.Datacenter == "" {
		d.errorf(ranges, "session_address", b, "session_address without datacenter",
			"session_address creates the sessions of locks that live in another datacenter; set datacenter to that one. "+
				"Without it the session would be made in the server's datacenter and the lock entries in the agent's.")
	}
	c.TLS = TLS{CAFile: deref(cb.CAFile), CAPath: deref(cb.CAPath), CertFile: deref(cb.CertFile), KeyFile: deref(cb.KeyFile), ServerName: deref(cb.ServerName)}
	for _, f := range []struct{ attr, path string }{{"ca_file", c.TLS.CAFile}, {"ca_path", c.TLS.CAPath}, {"cert_file", c.TLS.CertFile}, {"key_file", c.TLS.KeyFile}} {
		if f.path == "" {
			continue
		}
		if err := readable(f.path); err != nil {
			d.errorf(ranges, f.attr, b, "Unreadable TLS file", "%s: %v. repolock reads it for every new connection to Consul.", f.attr, err)
		}
	}
	if c.Datacenter != "" && !validName(c.Datacenter) {
		d.errorf(ranges, "datacenter", b, "Invalid datacenter name",
			"%q is not a valid Consul datacenter name: use letters, digits, '.', '_' and '-'.", c.Datacenter)
	}
	if n := deref(cb.SessionNode); n != "" {
		if err := CheckSessionNode(n); err != nil {
			d.errorf(ranges, "session_node", b, "Invalid session node name", "%s.", err)
		}
		c.SessionNode = n
	}
	if p := deref(cb.Prefix); p != "" {
		if err := CheckPrefix(p); err != nil {
			d.errorf(ranges, "prefix", b, "Invalid Consul KV prefix", "%s.", err)
		}
		c.Prefix = p
	}
}

// CheckPrefix validates a Consul KV prefix: the config's consul.prefix and
// the -prefix flags alike.
func CheckPrefix(p string) error {
	if !validPrefix(p) {
		return fmt.Errorf("%q is not a valid KV prefix: use one or more '/'-separated segments of letters, digits, '.', '_' and '-', without leading or trailing '/'", p)
	}
	return nil
}

// CheckSessionNode validates the session node's name: the config's
// consul.session_node and -session-node alike.
func CheckSessionNode(n string) error {
	if !validName(n) {
		return fmt.Errorf("%q is not a valid node name: use letters, digits, '.', '_' and '-'", n)
	}
	return nil
}

func validPrefix(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if !validName(seg) {
			return false
		}
	}
	return true
}

// repository decodes a repository block: a flat list of independent
// attribute checks, each reporting at its own attribute.
// limit decodes a limit block: a cap on the jobs that hold it at once.
func (d *decoder) limit(b *hcl.Block) *Limit {
	lb, ranges, decodedOK := decodeBlock[limitBody](d, b.Body)
	if !decodedOK {
		return nil
	}
	l := &Limit{Name: b.Labels[0], Slots: lb.Slots, PerHost: lb.PerHost != nil && *lb.PerHost, DeclRange: b.DefRange}
	ok := true
	switch err := consullock.CheckKey(l.Name); {
	case err != nil:
		ok = d.errorf(ranges, "", b, "Invalid limit name", "%s: a limit's name becomes one Consul KV path segment (under <prefix>/limits/).", err)
	case strings.Contains(l.Name, "."):
		// A per-host limit's key is <name>.<host>: a name with no dot
		// keeps every limit's keys apart.
		ok = d.errorf(ranges, "", b, "Invalid limit name", "%q has a '.': a limit's name may hold letters, digits, '_' and '-' (a per-host limit's key is <name>.<host>).", l.Name)
	case len(l.Name) > MaxLimitName:
		ok = d.errorf(ranges, "", b, "Invalid limit name", "%q is longer than %d bytes: a per-host limit's key adds the host's name to it.", l.Name, MaxLimitName)
	}
	if err := consullock.CheckSlots(consullock.Shared, l.Slots); err != nil || l.Slots == 0 {
		ok = d.errorf(ranges, "slots", b, "Invalid slots",
			"slots is how many jobs may hold limit %q at once: between 1 and %d, not %d.", l.Name, consullock.MaxSlots, l.Slots)
	}
	if !ok {
		return nil
	}
	return l
}

// MaxLimitName bounds a limit's name, so that <name>.<host> fits a key.
const MaxLimitName = 48

// limits checks a repository's or a job's list of limits (the attribute
// "limits" of b): each declared, none twice.
func (d *decoder) limits(names []string, ranges map[string]hcl.Range, b *hcl.Block, limitNames []string) bool {
	ok := true
	for i, n := range names {
		switch {
		case !slices.Contains(limitNames, n):
			ok = d.errorf(ranges, "limits", b, "Unknown limit",
				"No limit block is named %q.%s", n, didYouMean(n, limitNames))
		case slices.Contains(names[:i], n):
			ok = d.errorf(ranges, "limits", b, "Duplicate limit", "Limit %q is listed twice.", n)
		}
	}
	return ok
}

func (d *decoder) repository(b *hcl.Block, limitNames []string) *Repository {
	rb, ranges, decodedOK := decodeBlock[repositoryBody](d, b.Body)
	d.rejectPassword(rb.Password)
	// A block that did not decode is left out rather than checked further:
	// its fields hold zero values that would only cause follow-on errors.
	if !decodedOK || rb.Password != nil {
		return nil
	}
	r := &Repository{
		Name:            b.Labels[0],
		Tool:            rb.Tool,
		Location:        rb.Location,
		PasswordFile:    deref(rb.PasswordFile),
		PasswordCommand: deref(rb.PasswordCommand),
		LockKey:         deref(rb.LockKey),
		UnlockNative:    deref(rb.UnlockNative),
		SharedLocal:     rb.SharedLocal != nil && *rb.SharedLocal,
		Env:             rb.Env,
		Limits:          rb.Limits,
		DeclRange:       b.DefRange,
		Ranges:          ranges,
	}
	ok := true
	tool, err := plugin.Get(r.Tool)
	if err != nil {
		tools := plugin.Tools()
		ok = d.errorf(ranges, "tool", b, "Unknown tool",
			"%q is not a supported tool; use %s.%s", r.Tool, quoteList(tools), didYouMean(r.Tool, tools))
	}
	if strings.TrimSpace(r.Location) == "" {
		ok = d.errorf(ranges, "location", b, "Empty location",
			"location must name the repository, e.g. \"sftp:backup@nas:/srv/restic/photos\" or \"/srv/borg/photos\".")
	}
	if r.PasswordFile != "" && r.PasswordCommand != "" {
		ok = d.errorf(ranges, "password_command", b, "Conflicting password settings",
			"Set password_file or password_command, not both (password_file is on line %d).",
			ranges["password_file"].Start.Line)
	}
	if r.LockKey != "" {
		if err := consullock.CheckKey(r.LockKey); err != nil {
			ok = d.errorf(ranges, "lock_key", b, "Invalid lock_key",
				"%s: it becomes one Consul KV path segment.", err)
		}
	}
	if policy, err := plugin.ParseUnlockPolicy(r.UnlockNative); err == nil {
		r.UnlockNative = policy
	} else {
		unlocks := plugin.UnlockPolicies()
		ok = d.errorf(ranges, "unlock_native", b, "Invalid unlock_native",
			"unlock_native must be %s, not %q.%s", quoteList(unlocks), r.UnlockNative, didYouMean(r.UnlockNative, unlocks))
	}
	ok = d.env(r.Env, ranges, b, tool) && ok
	ok = d.limits(r.Limits, ranges, b, limitNames) && ok
	if !ok {
		return nil
	}
	return r
}

// rejectPassword reports a password attribute (nil if absent) and masks
// its value in the printed source.
func (d *decoder) rejectPassword(pw *hcl.Attribute) {
	if pw == nil {
		return
	}
	d.secrets = append(d.secrets, pw.Expr.Range())
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Repository password in configuration file",
		Detail: "A repository password must not be written into the configuration: it is rendered by templates, " +
			"printed by \"repolock validate\" and may end up in logs. Use password_file or password_command.",
		Subject: pw.NameRange.Ptr(),
		Context: pw.Range.Ptr(),
	})
}

// job decodes a job block over the top-level settings in cfg; topOK says
// whether the top-level lock block is valid, so that it may be laid under
// the job's own. repoNames are the repositories declared anywhere in the
// file, which the job may name.
func (d *decoder) job(b *hcl.Block, cfg *Config, repoNames, limitNames []string, topOK bool) *Job {
	jb, ranges, decodedOK := decodeBlock[jobBody](d, b.Body)
	if !decodedOK {
		return nil
	}
	j := &Job{
		Name:       b.Labels[0],
		Repository: jb.Repository,
		Command:    jb.Command,
		Mode:       deref(jb.Mode),
		Dir:        deref(jb.Dir),
		Env:        jb.Env,
		Limits:     jb.Limits,
		DeclRange:  b.DefRange,
		Ranges:     ranges,
	}
	ok := d.limits(j.Limits, ranges, b, limitNames)
	if !slices.Contains(repoNames, j.Repository) {
		ok = d.errorf(ranges, "repository", b, "Unknown repository",
			"No repository block is named %q.%s", j.Repository, didYouMean(j.Repository, repoNames))
	}
	ok = d.jobCommand(j, b) && ok
	// The job's env is checked against its repository's tool, which owns
	// the variables that name the repository.
	var tool plugin.Plugin
	if r, found := cfg.Repository(j.Repository); found {
		tool, _ = plugin.Get(r.Tool)
	}
	ok = d.env(j.Env, ranges, b, tool) && ok
	ok = d.jobExtras(j, jb, cfg, b) && ok
	ok = d.jobLock(j, jb.Lock, cfg, topOK) && ok
	if !ok {
		return nil
	}
	return j
}

// jobCommand checks a job's command and mode.
func (d *decoder) jobCommand(j *Job, b *hcl.Block) bool {
	ok := true
	switch {
	case len(j.Command) == 0:
		ok = d.errorf(j.Ranges, "command", b, "Empty command",
			"command must name the program and its arguments, e.g. [\"restic\", \"backup\", \"/data\"].")
	case strings.TrimSpace(j.Command[0]) == "":
		ok = d.errorf(j.Ranges, "command", b, "Empty command",
			"The first element of command is the program to run and must not be empty.")
	case slices.ContainsFunc(j.Command, func(s string) bool { return strings.ContainsRune(s, 0) }):
		ok = d.errorf(j.Ranges, "command", b, "Invalid command", "Command arguments must not contain NUL characters.")
	}
	if _, err := consullock.ParseMode(j.Mode); j.Mode != "" && err != nil {
		modes := consullock.Modes()
		ok = d.errorf(j.Ranges, "mode", b, "Invalid mode",
			"mode must be %s, or left out to infer it from the command, not %q.%s", quoteList(modes), j.Mode, didYouMean(j.Mode, modes))
	}
	return ok
}

// jobExtras decodes what a job adds around its run: hooks (after the
// top-level ones), metrics (over the top-level block) and expect_every.
func (d *decoder) jobExtras(j *Job, jb *jobBody, cfg *Config, b *hcl.Block) bool {
	ok := true
	j.Hooks = slices.Clone(cfg.Hooks)
	for _, hb := range jb.Hooks {
		h, hookOK := d.hook(hb.Name, hb.Body, b.DefRange)
		ok = ok && hookOK
		j.Hooks = append(j.Hooks, h)
	}
	j.Metrics = cfg.Metrics
	if jb.Metrics != nil {
		j.Metrics = d.metrics(jb.Metrics.Body, cfg.Metrics)
	}
	if jb.ExpectEvery != nil {
		every, err := time.ParseDuration(*jb.ExpectEvery)
		if err != nil || every <= 0 {
			ok = d.errorf(j.Ranges, "expect_every", b, "Invalid expect_every",
				"expect_every = %q must be a positive duration such as \"26h\" (how often the job should succeed).", *jb.ExpectEvery)
		}
		j.ExpectEvery = every
	}
	return ok
}

// jobLock lays the job's lock block (lb, nil if absent) over the
// top-level settings in cfg, into j.LockSettings and j.Lock. The timing is
// checked again only when the job's block sets some of it: otherwise it
// is the top-level one, checked already.
func (d *decoder) jobLock(j *Job, lb *lockBody, cfg *Config, topOK bool) bool {
	j.LockSettings, j.Lock = cfg.LockSettings, cfg.Lock
	if lb == nil {
		return true
	}
	own, ok := d.lockBlock(lb)
	if !ok || !topOK {
		return false
	}
	j.LockSettings = own.Over(cfg.LockSettings)
	j.Lock = j.LockSettings.Resolve()
	if !own.setsTiming() {
		return true
	}
	return d.checkTiming(j.Lock, own, "Settings this lock block leaves out come from the top-level lock block or the defaults. ")
}

// env checks names and values of an env map; tool (nil if unknown) owns
// the variables that name the repository and carry its secrets, which only
// the plugin may set. Diagnostics point at the env attribute: map keys
// have no ranges of their own once evaluated.
func (d *decoder) env(env map[string]string, ranges map[string]hcl.Range, b *hcl.Block, tool plugin.Plugin) bool {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ok := true
	for _, k := range keys {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			ok = d.errorf(ranges, "env", b, "Invalid environment variable name",
				"%q cannot be an environment variable name: it must be non-empty and contain neither '=' nor NUL.", k)
		case strings.HasPrefix(k, "REPOLOCK_"):
			ok = d.errorf(ranges, "env", b, "Reserved environment variable",
				"%s: variables starting with REPOLOCK_ are set by repolock for the command and cannot be configured.", k)
		case tool != nil && tool.OwnsEnv(k):
			ok = d.errorf(ranges, "env", b, "Repository variable in env",
				"%s names the repository or carries its secret, so only repolock may set it: %s reads it, and it could point %s at another repository than the one that is locked. Set location, password_file or password_command on the repository instead.",
				k, tool.Name(), tool.Name())
		case strings.ContainsRune(env[k], 0):
			ok = d.errorf(ranges, "env", b, "Invalid environment variable value",
				"The value of %s contains a NUL character, which no environment can hold.", k)
		}
	}
	return ok
}

// lockBlock is a decoded lock block: the layer it sets, and where a
// violated timing relation is reported (its first timing attribute, or
// its header).
type lockBlock struct {
	LockSettings
	timingSubject hcl.Range
}

// lockBlock parses the values of a decoded lock block, reporting each bad
// one at its attribute; ok is false if any was bad.
func (d *decoder) lockBlock(lb *lockBody) (lockBlock, bool) {
	a := lockAttrs{d: d, ranges: valueRanges(lb.Body, lb), ok: true}
	s := LockSettings{
		TTL:           a.duration("ttl", lb.TTL, timing.CheckTTL),
		Wait:          a.duration("wait", lb.Wait, checkWait),
		KillTimeout:   a.duration("kill_timeout", lb.KillTimeout, timing.CheckKillTimeout),
		RenewInterval: a.duration("renew_interval", lb.RenewInterval, timing.CheckRenewInterval),
		Margin:        a.duration("margin", lb.Margin, timing.CheckMargin),
		OnBusy:        a.onBusy(lb.OnBusy),
		KillSignal:    a.killSignal(lb.KillSignal),
	}
	subject := lb.DefRange
	for _, name := range []string{"ttl", "renew_interval", "kill_timeout", "margin"} {
		if r, set := a.ranges[name]; set {
			subject = r
			break
		}
	}
	return lockBlock{LockSettings: s, timingSubject: subject}, a.ok
}

// lockAttrs parses the attributes of one lock block; a bad value is
// reported at its range, left unset and clears ok.
type lockAttrs struct {
	d      *decoder
	ranges map[string]hcl.Range
	ok     bool
}

func (a *lockAttrs) fail(name, summary, detail string) {
	a.ok = false
	a.d.diags = append(a.d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: a.ranges[name].Ptr(),
	})
}

// duration parses the duration attribute name (v nil if absent) and
// checks its range.
func (a *lockAttrs) duration(name string, v *string, check func(time.Duration) error) *time.Duration {
	if v == nil {
		return nil
	}
	parsed, err := time.ParseDuration(*v)
	if err != nil {
		a.fail(name, "Invalid duration", fmt.Sprintf("%s = %q: %s. Durations are strings with a unit, such as \"30s\", \"10m\" or \"1h30m\" (units ns, us, ms, s, m, h).",
			name, *v, strings.TrimPrefix(err.Error(), "time: ")))
		return nil
	}
	if err := check(parsed); err != nil {
		a.fail(name, "Duration out of range", err.Error()+".")
		return nil
	}
	return &parsed
}

func (a *lockAttrs) onBusy(v *string) *string {
	if v == nil {
		return nil
	}
	if err := checkOnBusy(*v); err != nil {
		a.fail("on_busy", "Invalid on_busy", err.Error()+"."+didYouMean(*v, []string{OnBusyFail, OnBusySkip}))
		return nil
	}
	return v
}

func (a *lockAttrs) killSignal(v *string) *syscall.Signal {
	if v == nil {
		return nil
	}
	sig, err := ParseSignal(*v)
	if err != nil {
		a.fail("kill_signal", "Invalid kill_signal", err.Error()+".")
		return nil
	}
	return &sig
}

// checkTiming reports a violated timing relation of l, the resolved lock
// of a stack whose top is b, at the block that set it.
func (d *decoder) checkTiming(l Lock, b lockBlock, note string) bool {
	err := l.Model.CheckRelation()
	if err == nil {
		return true
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Lock timing cannot guarantee fencing",
		Detail:   err.Error() + ". " + note + "Unless set, renew_interval is ttl/3 and margin is ttl/10.",
		Subject:  b.timingSubject.Ptr(),
	})
	return false
}

// errorf reports a problem with an attribute's value, falling back to the
// block header when the attribute is absent. It returns false so callers
// can write ok = d.errorf(...). It takes where (ranges, attr, b) and what
// (summary, a Printf format and its args) in one call, as fmt.Errorf
// does, because every check in this file reports that way.
func (d *decoder) errorf(ranges map[string]hcl.Range, attr string, b *hcl.Block, summary, format string, args ...any) bool {
	subject, found := ranges[attr]
	if !found {
		subject = b.DefRange
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject.Ptr(),
	})
	return false
}

// valueRanges maps each attribute present in body to the range of its value
// expression, using the schema gohcl derives from the decoded struct.
func valueRanges(body hcl.Body, decoded any) map[string]hcl.Range {
	ranges := map[string]hcl.Range{}
	if body == nil {
		return ranges
	}
	schema, _ := gohcl.ImpliedBodySchema(decoded)
	content, _, _ := body.PartialContent(schema)
	if content == nil {
		return ranges
	}
	for name, attr := range content.Attributes {
		ranges[name] = attr.Expr.Range()
	}
	return ranges
}

// didYouMean suggests the closest of options to a mistyped value, the way
// HCL itself does for attribute names.
func didYouMean(given string, options []string) string {
	best, bestDist := "", 3
	for _, o := range options {
		if dist := levenshtein.Distance(strings.ToLower(given), strings.ToLower(o), nil); dist < bestDist {
			best, bestDist = o, dist
		}
	}
	// A short word two edits away ("wait" for "fail") is a different word,
	// not a typo.
	if best == "" || bestDist >= len(best)/2 {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

// quoteList renders options as `"a", "b" or "c"`.
func quoteList(options []string) string {
	q := make([]string, len(options))
	for i, o := range options {
		q[i] = fmt.Sprintf("%q", o)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// metrics decodes a metrics block over base (a job's over the top level's).
func (d *decoder) metrics(body hcl.Body, base Metrics) Metrics {
	mb, ranges, ok := decodeBlock[metricsBody](d, body)
	if !ok {
		return base
	}
	if mb.Textfile != nil {
		base.Textfile = *mb.Textfile
		if !filepath.IsAbs(base.Textfile) {
			d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid textfile",
				Detail:  fmt.Sprintf("textfile = %q must be an absolute directory (node_exporter's --collector.textfile.directory).", base.Textfile),
				Subject: ranges["textfile"].Ptr()})
		}
	}
	if mb.Pushgateway != nil {
		base.Pushgateway = strings.TrimSuffix(*mb.Pushgateway, "/")
		if u, err := url.Parse(base.Pushgateway); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid pushgateway",
				Detail:  fmt.Sprintf("pushgateway = %q must be an http(s) URL such as \"http://pushgateway:9091\".", base.Pushgateway),
				Subject: ranges["pushgateway"].Ptr()})
		}
	}
	return base
}

// hook decodes a hook block.
func (d *decoder) hook(name string, body hcl.Body, decl hcl.Range) (hooks.Hook, bool) {
	hb, ranges, ok := decodeBlock[hookBody](d, body)
	if !ok {
		return hooks.Hook{}, false
	}
	h := hooks.Hook{Name: name, On: hb.On, Command: hb.Command, Env: hb.Env}
	fail := func(attr, summary, format string, args ...any) {
		subject := decl
		if r, found := ranges[attr]; found {
			subject = r
		}
		d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary,
			Detail: fmt.Sprintf(format, args...), Subject: subject.Ptr()})
		ok = false
	}
	events := hooks.Events()
	for _, e := range h.On {
		if !slices.Contains(events, e) {
			fail("on", "Invalid hook event", "%q is not an event; use %s.%s", e, quoteList(events), didYouMean(e, events))
		}
	}
	if len(h.On) == 0 {
		fail("on", "Hook without events", "on must name at least one of %s.", quoteList(events))
	}
	if len(h.Command) == 0 || strings.TrimSpace(h.Command[0]) == "" {
		fail("command", "Empty command", "A hook's command names the program and its arguments, e.g. [\"curl\", \"-fsS\", \"https://hc-ping.com/…\"].")
	}
	if hb.Timeout != nil {
		t, err := time.ParseDuration(*hb.Timeout)
		if err != nil || t <= 0 {
			fail("timeout", "Invalid timeout", "timeout = %q must be a positive duration such as \"10s\".", *hb.Timeout)
		}
		h.Timeout = t
	}
	return h, ok
}
