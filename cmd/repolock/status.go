package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/internal/config"
	"github.com/repolock/repolock/internal/exitcode"
	"github.com/repolock/repolock/internal/plan"
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
	repos, err := consullock.Status(ctx, client, pfx, key)
	if err != nil {
		return err
	}
	stale := staleJobs(cfg, key, repos, time.Now())
	names := repositoryNames(cfg)
	if *asJSON {
		out := statusJSON{Locks: []lockJSON{}, Stale: stale}
		for _, r := range repos {
			out.Locks = append(out.Locks, lockJSON{RepoStatus: r, Repositories: names[r.Key]})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printStatus(stdout, repos, names, time.Now())
	}
	for _, s := range stale {
		fmt.Fprintln(stderr, "STALE:", s)
	}
	if len(stale) > 0 {
		return &staleError{n: len(stale)}
	}
	return nil
}

// statusJSON is what `repolock status -json` prints; README documents it
// as a stable schema.
type statusJSON struct {
	Locks []lockJSON `json:"locks"`
	Stale []string   `json:"stale,omitempty"`
}

// lockJSON is one lock key: its entries and last run (consullock's
// RepoStatus) and the config's repositories that map to it.
type lockJSON struct {
	consullock.RepoStatus
	Repositories []string `json:"repositories,omitempty"`
}

// repositoryNames maps each lock key to the config's repositories on it.
func repositoryNames(cfg *config.Config) map[string][]string {
	names := map[string][]string{}
	if cfg == nil {
		return names
	}
	for _, r := range cfg.Repositories {
		if res, err := plan.Resolve(cfg, r); err == nil {
			names[res.Key] = append(names[res.Key], r.Name)
		}
	}
	return names
}

// staleError is a status that found jobs without a recent success (exit 1,
// for health checks).
type staleError struct{ n int }

func (e *staleError) Error() string {
	return fmt.Sprintf("%d job(s) without a success within their expect_every", e.n)
}
func (e *staleError) ExitCode() int { return exitcode.Stale }

// staleJobs lists the config's jobs (of key, when not "") with an
// expect_every whose last success (in their repository's last record) is
// older than that, or missing.
func staleJobs(cfg *config.Config, key string, repos []consullock.RepoStatus, now time.Time) []string {
	if cfg == nil {
		return nil
	}
	byKey := map[string]*consullock.LastRun{}
	for _, r := range repos {
		byKey[r.Key] = r.Last
	}
	var out []string
	for _, j := range cfg.Jobs {
		if j.ExpectEvery == 0 {
			continue
		}
		r, _ := cfg.Repository(j.Repository)
		res, err := plan.Resolve(cfg, r)
		if err != nil {
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
		case when.IsZero():
			out = append(out, fmt.Sprintf("job %s on repository %s (key %s): no recorded success (expect_every %s)", j.Name, j.Repository, res.Key, j.ExpectEvery))
		case now.Sub(when) > j.ExpectEvery:
			out = append(out, fmt.Sprintf("job %s on repository %s (key %s): last success %s ago (expect_every %s)", j.Name, j.Repository, res.Key, now.Sub(when).Round(time.Second), j.ExpectEvery))
		}
	}
	return out
}

func printStatus(w io.Writer, repos []consullock.RepoStatus, names map[string][]string, now time.Time) {
	if len(repos) == 0 {
		fmt.Fprintln(w, "no locks recorded")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tKEY\tSTATE\tMODE\tHOLDER\tSINCE\tTOKEN")
	for _, r := range repos {
		repo := strings.Join(names[r.Key], ",")
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s ago\t%s\n", repo, r.Key, e.State, e.Mode, who(e.Holder),
				now.Sub(since).Round(time.Second), tok)
		}
	}
	tw.Flush()
	for _, r := range repos {
		if l := r.Last; l != nil {
			job := ""
			if l.Job != "" {
				job = " job " + l.Job
			}
			fmt.Fprintf(w, "last run of %s:%s %s exit %d (%s), ended %s ago after %s, by %s, token %d\n",
				r.Key, job, l.Mode, l.Exit, l.Class, now.Sub(l.Ended).Round(time.Second),
				l.Ended.Sub(l.Started).Round(time.Millisecond), who(l.Holder), l.Token)
			for _, j := range slices.Sorted(maps.Keys(l.LastSuccess)) {
				name := j
				if name == "" {
					name = "(exec)"
				}
				fmt.Fprintf(w, "  last success of %s: %s ago\n", name, now.Sub(l.LastSuccess[j]).Round(time.Second))
			}
		}
	}
}

// who names a holder for people: user@host pid, and the Nomad allocation.
func who(h consullock.Holder) string {
	s := fmt.Sprintf("%s@%s pid %d", h.User, h.Host, h.PID)
	if h.NomadAllocID != "" {
		s += fmt.Sprintf(" (nomad %s/%s alloc %.8s)", h.NomadJobID, h.NomadTaskName, h.NomadAllocID)
	}
	if h.Job != "" {
		s += " job " + h.Job
	}
	return s
}
