package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/repolock/repolock/consullock"
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
	key, pfx, client, err := lockTarget(fs.Arg(0), *cfgFlag, *prefix, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	repos, err := consullock.Status(ctx, client, pfx, key)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(repos)
	}
	printStatus(stdout, repos, time.Now())
	return nil
}

func printStatus(w io.Writer, repos []consullock.RepoStatus, now time.Time) {
	if len(repos) == 0 {
		fmt.Fprintln(w, "no locks recorded")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tSTATE\tMODE\tHOLDER\tSINCE\tTOKEN")
	for _, r := range repos {
		if len(r.Entries) == 0 {
			fmt.Fprintf(tw, "%s\tfree\t\t\t\t\n", r.Key)
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\t%s\n", r.Key, e.State, e.Mode, who(e.Holder),
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
