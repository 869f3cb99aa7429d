package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/history"
	"github.com/repolock/repolock/internal/plan"
	"github.com/repolock/repolock/internal/run"
	"github.com/repolock/repolock/plugin"
)

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	prefix := fs.String("prefix", "", "Consul KV prefix (default the config's, else repolock)")
	cfgFlag := fs.String("config", "", "config file naming repositories (default $REPOLOCK_CONFIG, else ./config.hcl if present)")
	asJSON := fs.Bool("json", false, "print JSON (for scripts)")
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: repolock status [-json] [REPOSITORY|KEY]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef("status: at most one REPOSITORY or KEY")
	}
	key, pfx, client, cfg, err := lockTarget(fs.Arg(0), *cfgFlag, *prefix, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	repos, hidden, err := readStatus(ctx, client, pfx, key, repositoryNames(cfg))
	if err != nil {
		return err
	}
	limits := []limitStatus{}
	if key == "" {
		if limits, err = readLimits(ctx, client, pfx, cfg); err != nil {
			return err
		}
	}
	var dc string // the config's, which consulClient checked, else the agent's own
	if cfg != nil {
		dc = cfg.Consul.Datacenter
	}
	if dc == "" {
		dctx, dcancel := context.WithTimeout(ctx, datacenterCheck)
		dc, _ = consullock.Datacenter(dctx, client, "")
		dcancel()
	}
	stale := staleJobs(cfg, key, repos, time.Now())
	if *asJSON {
		out := statusJSON{Datacenter: dc, HiddenByACLs: hidden, Locks: repos, Limits: limits, Stale: append([]string{}, stale...)}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		where := "the agent's own datacenter (agent:read would name it)"
		if dc != "" {
			where = "datacenter " + strconv.Quote(dc)
		}
		fmt.Fprintf(stdout, "locks in %s\n", where)
		printStatus(stdout, repos, time.Now())
		printLimits(stdout, limits, time.Now())
		if hidden {
			fmt.Fprintf(stdout, "this token may not read every lock under %s: Consul left out what its ACLs do not allow (a per-repository token shows only its repositories)\n", consullock.RepoPrefix(pfx, ""))
		}
	}
	for _, s := range stale {
		fmt.Fprintln(stderr, "STALE:", s)
	}
	if len(stale) > 0 {
		return &run.StaleError{N: len(stale)}
	}
	return nil
}

// statusJSON is what `repolock status -json` prints; README documents it
// as a stable schema. Every list is [] when empty, never null.
type statusJSON struct {
	// Datacenter is the one the locks live in ("" when the agent would
	// not say, which takes agent:read).
	Datacenter string `json:"datacenter"`
	// HiddenByACLs says that the token may not read every lock: Consul
	// left some out (X-Consul-Results-Filtered-By-ACLs).
	HiddenByACLs bool          `json:"hidden_by_acls"`
	Locks        []lockStatus  `json:"locks"`
	Limits       []limitStatus `json:"limits"`
	Stale        []string      `json:"stale"`
}

// limitStatus is one limit's key (a per-host limit has one per host): its
// slots in use and in all, its holders and its waiters.
type limitStatus struct {
	Key string `json:"key"`
	// Slots is the cap in force: the smallest its live contenders' sessions
	// name, else the config's (0: not known).
	Slots   int                 `json:"slots"`
	Used    int                 `json:"used"`
	Entries []consullock.Record `json:"entries"`
}

// readLimits reads the keys of limits with live contenders, and the
// config's limits that have none.
func readLimits(ctx context.Context, c *api.Client, prefix string, cfg *plan.Config) ([]limitStatus, error) {
	keys, _, err := consullock.LimitStatus(ctx, c, prefix)
	if err != nil {
		return nil, err
	}
	out := []limitStatus{}
	seen := map[string]bool{}
	for _, k := range keys {
		l := limitStatus{Key: k.Key, Entries: append([]consullock.Record{}, k.Entries...)}
		for _, e := range k.Entries {
			if e.Slots > 0 && (l.Slots == 0 || e.Slots < l.Slots) {
				l.Slots = e.Slots
			}
			if e.State == consullock.StateHolding {
				l.Used++
			}
		}
		seen[k.Key] = true
		out = append(out, l)
	}
	if cfg != nil {
		for _, l := range cfg.Limits {
			if !l.PerHost && !seen[l.Name] {
				out = append(out, limitStatus{Key: l.Name, Slots: l.Slots, Entries: []consullock.Record{}})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func printLimits(w io.Writer, limits []limitStatus, now time.Time) {
	if len(limits) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nLIMIT\tSLOTS\tSTATE\tHOLDER\tSINCE")
	for _, l := range limits {
		slots := fmt.Sprintf("%d of %d used", l.Used, l.Slots)
		if len(l.Entries) == 0 {
			fmt.Fprintf(tw, "%s\t%s\tfree\t\t\n", l.Key, slots)
		}
		for _, e := range l.Entries {
			since := e.Since
			if e.Granted != nil {
				since = *e.Granted
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\n", l.Key, slots, consullock.Escape(e.State), e.Holder, now.Sub(since).Round(time.Second))
		}
	}
	tw.Flush()
}

// lockStatus is one lock key as status shows it: its live contenders
// (consullock), its last finished run (history) and the config's
// repositories on it.
type lockStatus struct {
	Key          string              `json:"key"`
	Repositories []string            `json:"repositories"`
	Entries      []consullock.Record `json:"entries"`
	Last         *history.Run        `json:"last,omitempty"`
}

// readStatus joins the lock entries and the last records of every key
// under prefix (only key's, when not ""), sorted by key.
// hidden says that the token may not read some of them.
func readStatus(ctx context.Context, c *api.Client, prefix, key string, names map[string][]string) (_ []lockStatus, hidden bool, _ error) {
	locks, hidden, err := consullock.Status(ctx, c, prefix, key)
	if err != nil {
		return nil, false, err
	}
	lasts, err := history.Read(ctx, c, prefix, key)
	if err != nil {
		return nil, false, err
	}
	byKey := map[string]*lockStatus{}
	for _, l := range locks {
		byKey[l.Key] = &lockStatus{Key: l.Key, Entries: l.Entries}
	}
	for k, last := range lasts {
		if byKey[k] == nil {
			byKey[k] = &lockStatus{Key: k}
		}
		last.NativeLocksCleared = append([]plugin.NativeLock{}, last.NativeLocksCleared...)
		last.Notes = append([]string{}, last.Notes...)
		byKey[k].Last = last
	}
	out := make([]lockStatus, 0, len(byKey))
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		r := byKey[k]
		r.Entries = append([]consullock.Record{}, r.Entries...)
		r.Repositories = append([]string{}, names[k]...)
		out = append(out, *r)
	}
	return out, hidden, nil
}

// repositoryNames maps each lock key to the config's repositories on it.
func repositoryNames(cfg *plan.Config) map[string][]string {
	names := map[string][]string{}
	if cfg == nil {
		return names
	}
	for _, r := range cfg.Repos() {
		names[r.Key] = append(names[r.Key], r.Config.Name)
	}
	return names
}

// staleJobs lists the config's jobs (of key, when not "") with an
// expect_every whose last success (in their repository's last record) is
// older than that, or missing.
func staleJobs(cfg *plan.Config, key string, repos []lockStatus, now time.Time) []string {
	if cfg == nil {
		return nil
	}
	byKey := map[string]*history.Run{}
	for _, r := range repos {
		byKey[r.Key] = r.Last
	}
	var out []string
	for _, j := range cfg.Jobs {
		if j.ExpectEvery == 0 {
			continue
		}
		res, ok := cfg.Repo(j.Repository)
		if !ok {
			continue
		}
		if key != "" && res.Key != key {
			continue
		}
		var when time.Time
		if last := byKey[res.Key]; last != nil {
			when = last.LastSuccess[j.Name]
		}
		switch {
		case history.Implausible(when, now):
			out = append(out, fmt.Sprintf("job %s on repository %s (key %s): last success at %s is in the future: implausible, a forged record or a clock far off (expect_every %s)", j.Name, j.Repository, res.Key, when.UTC().Format(time.RFC3339), j.ExpectEvery))
		case when.IsZero():
			out = append(out, fmt.Sprintf("job %s on repository %s (key %s): no recorded success (expect_every %s)", j.Name, j.Repository, res.Key, j.ExpectEvery))
		case now.Sub(when) > j.ExpectEvery:
			out = append(out, fmt.Sprintf("job %s on repository %s (key %s): last success %s ago (expect_every %s)", j.Name, j.Repository, res.Key, now.Sub(when).Round(time.Second), j.ExpectEvery))
		}
	}
	return out
}

func printStatus(w io.Writer, repos []lockStatus, now time.Time) {
	if len(repos) == 0 {
		fmt.Fprintln(w, "no locks recorded")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tKEY\tSTATE\tMODE\tHOLDER\tSINCE\tTOKEN")
	for _, r := range repos {
		repo := strings.Join(r.Repositories, ",")
		if repo == "" {
			repo = "-"
		}
		if len(r.Entries) == 0 {
			fmt.Fprintf(tw, "%s\t%s\tfree\t\t\t\t\n", repo, r.Key)
		}
		for _, e := range r.Entries {
			since := e.Since
			if e.Granted != nil {
				since = *e.Granted
			}
			tok := ""
			if e.State == consullock.StateHolding {
				tok = fmt.Sprint(e.Token)
			}
			mode := string(e.Mode)
			if e.Slots > 0 {
				mode += fmt.Sprintf(" (%d slots)", e.Slots)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s ago\t%s\n", repo, r.Key, consullock.Escape(e.State), mode, e.Holder,
				now.Sub(since).Round(time.Second), tok)
		}
	}
	tw.Flush()
	for _, r := range repos {
		if l := r.Last; l != nil {
			job := ""
			if l.Job != "" {
				job = " job " + consullock.Escape(l.Job)
			}
			fmt.Fprintf(w, "last run of %s:%s %s exit %d (%s), ended %s ago after %s, by %s, token %d\n",
				r.Key, job, consullock.Escape(string(l.Mode)), l.Exit, consullock.Escape(l.Class), now.Sub(l.Ended).Round(time.Second),
				l.Ended.Sub(l.Started).Round(time.Millisecond), l.Holder, l.Token)
			for _, j := range slices.Sorted(maps.Keys(l.LastSuccess)) {
				name := consullock.Escape(j)
				if name == "" {
					name = "(exec)"
				}
				if when := l.LastSuccess[j]; history.Implausible(when, now) {
					fmt.Fprintf(w, "  last success of %s: at %s, in the future: implausible\n", name, when.UTC().Format(time.RFC3339))
				} else {
					fmt.Fprintf(w, "  last success of %s: %s ago\n", name, now.Sub(when).Round(time.Second))
				}
			}
		}
	}
}
