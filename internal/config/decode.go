package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
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
	},
}

type consulBody struct {
	Address     *string `hcl:"address,optional"`
	Prefix      *string `hcl:"prefix,optional"`
	TokenFile   *string `hcl:"token_file,optional"`
	Datacenter  *string `hcl:"datacenter,optional"`
	SessionNode *string `hcl:"session_node,optional"`
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
	Lock       *lockBody         `hcl:"lock,block"`
	Metrics    *metricsBody      `hcl:"metrics,block"`
	Hooks      []hookBlock       `hcl:"hook,block"`
	// ExpectEvery is a duration, parsed with its range at hand.
	ExpectEvery *string  `hcl:"expect_every,optional"`
	Body        hcl.Body `hcl:",body"`
}

// nameRE is what repository and job names and lock keys may contain: they
// end up in Consul KV paths, environment variables and command lines.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// validName also rules out "." and "..", which path handling would collapse.
func validName(s string) bool {
	return nameRE.MatchString(s) && s != "." && s != ".."
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
		Consul: Consul{Prefix: DefaultPrefix},
		Lock:   DefaultLock(),
	}
	if content == nil {
		return cfg, nil, d.diags
	}
	blocks := content.Blocks.ByType()

	if b := d.single(blocks["consul"]); b != nil {
		d.consul(b, &cfg.Consul)
	}

	// topLock stays valid (and empty) without a lock block; a broken one
	// makes it invalid so jobs are not checked against guessed settings.
	var topLock lockSettings
	topLockOK := true
	if b := d.single(blocks["lock"]); b != nil {
		lb, _, decodedOK := decodeBlock[lockBody](d, b.Body)
		lb.DefRange = b.DefRange
		var ok bool
		topLock, ok = d.lockSettings(lb)
		topLockOK = ok && decodedOK
		if topLockOK {
			cfg.Lock = topLock.resolve()
			topLockOK = d.checkTiming(cfg.Lock, topLock, "")
		}
	}

	if b := d.single(blocks["metrics"]); b != nil {
		cfg.Metrics = d.metrics(b.Body, Metrics{})
	}
	for _, b := range blocks["hook"] {
		if h, ok := d.hook(b.Labels[0], b.Body, b.DefRange); ok {
			cfg.Hooks = append(cfg.Hooks, h)
		}
	}

	// Repositories come first so that jobs may refer to repositories
	// declared later in the file.
	declared := map[string]*hcl.Block{}
	var repoNames []string
	for _, b := range blocks["repository"] {
		name := b.Labels[0]
		if !d.label(b, "repository", declared) {
			continue
		}
		repoNames = append(repoNames, name)
		if r := d.repository(b); r != nil {
			cfg.Repositories = append(cfg.Repositories, r)
		}
	}

	jobsDeclared := map[string]*hcl.Block{}
	for _, b := range blocks["job"] {
		if !d.label(b, "job", jobsDeclared) {
			continue
		}
		if j := d.job(b, cfg, declared, repoNames, topLock, topLockOK); j != nil {
			cfg.Jobs = append(cfg.Jobs, j)
		}
	}
	return cfg, d.secrets, d.diags
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
	if n := deref(cb.SessionNode); n != "" {
		if !validName(n) {
			d.errorf(ranges, "session_node", b, "Invalid session node name",
				"%q is not a valid node name: use letters, digits, '.', '_' and '-'.", n)
		}
		c.SessionNode = n
	}
	if p := deref(cb.Prefix); p != "" {
		if !validPrefix(p) {
			d.errorf(ranges, "prefix", b, "Invalid Consul KV prefix",
				"%q is not a valid KV prefix: use one or more '/'-separated segments of letters, digits, '.', '_' and '-', without leading or trailing '/'.", p)
		}
		c.Prefix = p
	}
}

func validPrefix(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if !validName(seg) {
			return false
		}
	}
	return true
}

// repository decodes a repository block. It is a flat list of independent
// attribute checks, each reporting at its own attribute; it reads best as
// one list, so it is longer than 60 lines.
func (d *decoder) repository(b *hcl.Block) *Repository {
	rb, ranges, decodedOK := decodeBlock[repositoryBody](d, b.Body)
	if rb.Password != nil {
		d.secrets = append(d.secrets, rb.Password.Expr.Range())
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Repository password in configuration file",
			Detail: "A repository password must not be written into the configuration: it is rendered by templates, " +
				"printed by \"repolock validate\" and may end up in logs. Use password_file or password_command.",
			Subject: rb.Password.NameRange.Ptr(),
			Context: rb.Password.Range.Ptr(),
		})
	}
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
	if !ok {
		return nil
	}
	return r
}

// job decodes a job block. top and topOK describe the top-level lock block,
// whose resolved Lock (cfg.Lock) a job without a lock block of its own
// takes as it is. Like repository, a flat list of attribute checks.
func (d *decoder) job(b *hcl.Block, cfg *Config, repos map[string]*hcl.Block, repoNames []string, top lockSettings, topOK bool) *Job {
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
		DeclRange:  b.DefRange,
		Ranges:     ranges,
	}
	ok := true
	if _, exists := repos[j.Repository]; !exists {
		ok = d.errorf(ranges, "repository", b, "Unknown repository",
			"No repository block is named %q.%s", j.Repository, didYouMean(j.Repository, repoNames))
	}
	switch {
	case len(j.Command) == 0:
		ok = d.errorf(ranges, "command", b, "Empty command",
			"command must name the program and its arguments, e.g. [\"restic\", \"backup\", \"/data\"].")
	case strings.TrimSpace(j.Command[0]) == "":
		ok = d.errorf(ranges, "command", b, "Empty command",
			"The first element of command is the program to run and must not be empty.")
	case slices.ContainsFunc(j.Command, func(s string) bool { return strings.ContainsRune(s, 0) }):
		ok = d.errorf(ranges, "command", b, "Invalid command", "Command arguments must not contain NUL characters.")
	}
	if _, err := consullock.ParseMode(j.Mode); j.Mode != "" && err != nil {
		modes := consullock.Modes()
		ok = d.errorf(ranges, "mode", b, "Invalid mode",
			"mode must be %s, or left out to infer it from the command, not %q.%s", quoteList(modes), j.Mode, didYouMean(j.Mode, modes))
	}
	// The job's env is checked against its repository's tool, which owns
	// the variables that name the repository.
	var tool plugin.Plugin
	if r, found := cfg.Repository(j.Repository); found {
		tool, _ = plugin.Get(r.Tool)
	}
	ok = d.env(j.Env, ranges, b, tool) && ok

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
			ok = d.errorf(ranges, "expect_every", b, "Invalid expect_every",
				"expect_every = %q must be a positive duration such as \"26h\" (how often the job should succeed).", *jb.ExpectEvery)
		}
		j.ExpectEvery = every
	}

	j.Lock = cfg.Lock
	if jb.Lock != nil {
		own, lockOK := d.lockSettings(jb.Lock)
		switch {
		case !lockOK || !topOK:
			ok = false
		case !own.setsTiming():
			// The timing is the top-level one, checked already.
			j.Lock = own.over(top).resolve()
		default:
			j.Lock = own.over(top).resolve()
			ok = d.checkTiming(j.Lock, own,
				"Settings this lock block leaves out come from the top-level lock block or the defaults. ") && ok
		}
	}
	if !ok {
		return nil
	}
	return j
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

// lockSettings is what one lock block sets; nil fields are inherited from
// the enclosing level.
type lockSettings struct {
	ttl, wait, killTimeout, renewInterval, margin *time.Duration
	onBusy                                        *string
	killSignal                                    *syscall.Signal

	// timingSubject is where a violated timing relation is reported: the
	// block's first timing attribute, or its header.
	timingSubject hcl.Range
}

// lockSettings parses the values of a decoded lock block, reporting each bad
// one at its attribute. One parse per attribute, in the order of the
// block's documentation, which is why it is long.
func (d *decoder) lockSettings(lb *lockBody) (lockSettings, bool) {
	ranges := valueRanges(lb.Body, lb)
	var s lockSettings
	ok := true
	dur := func(name string, v *string, check func(time.Duration) error) *time.Duration {
		if v == nil {
			return nil
		}
		r := ranges[name]
		parsed, err := time.ParseDuration(*v)
		if err != nil {
			ok = false
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid duration",
				Detail: fmt.Sprintf("%s = %q: %s. Durations are strings with a unit, such as \"30s\", \"10m\" or \"1h30m\" (units ns, us, ms, s, m, h).",
					name, *v, strings.TrimPrefix(err.Error(), "time: ")),
				Subject: r.Ptr(),
			})
			return nil
		}
		if err := check(parsed); err != nil {
			ok = false
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duration out of range",
				Detail:   err.Error() + ".",
				Subject:  r.Ptr(),
			})
			return nil
		}
		return &parsed
	}
	s.ttl = dur("ttl", lb.TTL, timing.CheckTTL)
	s.wait = dur("wait", lb.Wait, func(v time.Duration) error {
		if v < 0 {
			return fmt.Errorf("wait (%s) must not be negative", v)
		}
		return nil
	})
	s.killTimeout = dur("kill_timeout", lb.KillTimeout, timing.CheckKillTimeout)
	s.renewInterval = dur("renew_interval", lb.RenewInterval, timing.CheckRenewInterval)
	s.margin = dur("margin", lb.Margin, timing.CheckMargin)

	if lb.OnBusy != nil {
		if err := checkOnBusy(*lb.OnBusy); err != nil {
			ok = false
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid on_busy",
				Detail:   err.Error() + "." + didYouMean(*lb.OnBusy, []string{OnBusyFail, OnBusySkip}),
				Subject:  ranges["on_busy"].Ptr(),
			})
		} else {
			s.onBusy = lb.OnBusy
		}
	}
	if lb.KillSignal != nil {
		sig, err := ParseSignal(*lb.KillSignal)
		if err != nil {
			ok = false
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid kill_signal",
				Detail:   err.Error() + ".",
				Subject:  ranges["kill_signal"].Ptr(),
			})
		} else {
			s.killSignal = &sig
		}
	}

	s.timingSubject = lb.DefRange
	for _, name := range []string{"ttl", "renew_interval", "kill_timeout", "margin"} {
		if r, set := ranges[name]; set {
			s.timingSubject = r
			break
		}
	}
	return s, ok
}

// over returns s with the fields it leaves unset taken from base.
func (s lockSettings) over(base lockSettings) lockSettings {
	pick := func(a, b *time.Duration) *time.Duration {
		if a != nil {
			return a
		}
		return b
	}
	out := s
	out.ttl = pick(s.ttl, base.ttl)
	out.wait = pick(s.wait, base.wait)
	out.killTimeout = pick(s.killTimeout, base.killTimeout)
	out.renewInterval = pick(s.renewInterval, base.renewInterval)
	out.margin = pick(s.margin, base.margin)
	if out.onBusy == nil {
		out.onBusy = base.onBusy
	}
	if out.killSignal == nil {
		out.killSignal = base.killSignal
	}
	return out
}

// resolve fills what s leaves unset from DefaultLock. RenewInterval and
// Margin follow the resolved TTL rather than DefaultLock's TTL, so a job
// that only shortens ttl gets a proportionally shorter renew interval.
func (s lockSettings) resolve() Lock {
	l := DefaultLock()
	if s.ttl != nil {
		l.TTL = *s.ttl
	}
	if s.wait != nil {
		l.Wait = *s.wait
	}
	if s.killTimeout != nil {
		l.KillTimeout = *s.killTimeout
	}
	l.RenewInterval = timing.DefaultRenewInterval(l.TTL)
	if s.renewInterval != nil {
		l.RenewInterval = *s.renewInterval
	}
	l.Margin = timing.DefaultMargin(l.TTL)
	if s.margin != nil {
		l.Margin = *s.margin
	}
	if s.onBusy != nil {
		l.OnBusy = *s.onBusy
	}
	if s.killSignal != nil {
		l.KillSignal = *s.killSignal
	}
	return l
}

func (s lockSettings) setsTiming() bool {
	return s.ttl != nil || s.renewInterval != nil || s.killTimeout != nil || s.margin != nil
}

// checkTiming reports a violated timing relation at the block that set it.
func (d *decoder) checkTiming(l Lock, s lockSettings, note string) bool {
	err := l.Model.CheckRelation()
	if err == nil {
		return true
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Lock timing cannot guarantee fencing",
		Detail:   err.Error() + ". " + note + "Unless set, renew_interval is ttl/3 and margin is ttl/10.",
		Subject:  s.timingSubject.Ptr(),
	})
	return false
}

// errorf reports a problem with an attribute's value, falling back to the
// block header when the attribute is absent. It returns false so callers
// can write ok = d.errorf(...).
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
