// Package metrics turns a finished run into Prometheus metrics, through
// client_golang: a node_exporter textfile per job (written atomically) and/or
// a Pushgateway push per job. Gauges describe the last run; counters and
// the last success time carry over from the previous file or push, so that
// "no success for two days" is one alert even after failures.
package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/repolock/repolock/internal/history"
)

// Outcomes of a run, the values of repolock_runs_total's outcome label.
const (
	Success     = "success"
	Failure     = "failure"
	Busy        = "busy"
	Lost        = "lost"
	Interrupted = "interrupted"
	Config      = "config"
)

// Outcomes lists every outcome, so that each counter series exists from
// the first run on (an alert on a rate needs the zero).
var Outcomes = []string{Success, Failure, Busy, Lost, Interrupted, Config}

// Sink is where metrics go; empty fields are off.
type Sink struct {
	Textfile    string // a node_exporter textfile collector directory
	Pushgateway string // a Pushgateway URL
}

// Run is one finished run.
type Run struct {
	Job, Repository, Mode string
	Outcome               string
	Exit                  int
	Started, Ended        time.Time
	LockWait              time.Duration
	NativeLocksCleared    int
	Version               string
	// RenewRTT holds the round trips of the run's confirmed renewals
	// (NewRenewRTT); nil for none.
	RenewRTT prometheus.Histogram
}

// RenewRTTName is the histogram of renewal round trips; its buckets reach
// from a loopback agent past the default timing's 7 s of slack.
const RenewRTTName = "repolock_renew_rtt_seconds"

var renewRTTBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 7.5, 10, 15}

// NewRenewRTT is the histogram a run observes its renewal round trips in;
// Write adds it to the previous runs' counts.
func NewRenewRTT() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: RenewRTTName,
		Help: "Round trips of confirmed session renewals.", Buckets: renewRTTBuckets})
}

// Write records run in every configured sink; errors are joined.
func Write(ctx context.Context, s Sink, run Run) error {
	var errs []error
	if s.Textfile != "" {
		errs = append(errs, writeTextfile(s.Textfile, run))
	}
	if s.Pushgateway != "" {
		errs = append(errs, pushRun(ctx, s.Pushgateway, run))
	}
	return errors.Join(errs...)
}

// TextfileName is the file of job in a textfile directory.
func TextfileName(dir, job string) string { return filepath.Join(dir, "repolock_"+job+".prom") }

// writeTextfile replaces the job's file atomically: WriteToTextfile writes
// a temporary file beside it (whose name does not end in .prom, so
// node_exporter skips it) and renames it over the old one.
func writeTextfile(dir string, run Run) error {
	path := TextfileName(dir, run.Job)
	var prev map[string]*dto.MetricFamily
	if f, err := os.Open(path); err == nil {
		prev, _ = parse(f)
		f.Close()
	}
	base := prometheus.Labels{"repository": run.Repository, "job": run.Job}
	if err := prometheus.WriteToTextfile(path, registry(run, base, prev)); err != nil {
		return fmt.Errorf("metrics: textfile: %w", err)
	}
	return nil
}

func pushRun(ctx context.Context, url string, run Run) error {
	prev, err := previousPush(ctx, url, run)
	if err != nil {
		prev = nil // a Pushgateway that cannot be read is pushed to afresh
	}
	// The grouping key gives the series their job and repository labels
	// (the Pushgateway refuses metrics that carry them themselves).
	p := push.New(url, run.Job).Grouping("repository", run.Repository).Gatherer(registry(run, nil, prev))
	if err := p.PushContext(ctx); err != nil {
		return fmt.Errorf("metrics: pushgateway: %w", err)
	}
	return nil
}

// previousPush reads this job's group back from the Pushgateway.
func previousPush(ctx context.Context, url string, run Run) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	all, err := parse(resp.Body)
	if err != nil {
		return nil, err
	}
	// Keep only this group's series: job and repository labels match.
	for _, mf := range all {
		var mine []*dto.Metric
		for _, m := range mf.Metric {
			if label(m, "job") == run.Job && label(m, "repository") == run.Repository {
				mine = append(mine, m)
			}
		}
		mf.Metric = mine
	}
	return all, nil
}

func parse(r io.Reader) (map[string]*dto.MetricFamily, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(b))
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// previous is the value of the series of name whose labels include want.
func previous(prev map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	m := series(prev, name, want)
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// series is the previous series of name whose labels include want, nil
// when there is none.
func series(prev map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf := prev[name]
	if mf == nil {
		return nil
	}
	for _, m := range mf.Metric {
		match := true
		for k, v := range want {
			match = match && label(m, k) == v
		}
		if match {
			return m
		}
	}
	return nil
}

// registry builds this run's metrics on top of the previous ones; base
// labels (job, repository) go on every series but build_info.
func registry(run Run, base prometheus.Labels, prev map[string]*dto.MetricFamily) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	with := func(k, v string) prometheus.Labels {
		l := maps.Clone(base)
		if l == nil {
			l = prometheus.Labels{}
		}
		if k != "" {
			l[k] = v
		}
		return l
	}
	labels, withMode := with("", ""), with("mode", run.Mode)
	gauge := func(name, help string, l prometheus.Labels, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: l})
		g.Set(v)
		reg.MustRegister(g)
	}
	counter := func(name, help string, l prometheus.Labels, add float64) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: l})
		c.Add(previous(prev, name, l) + add)
		reg.MustRegister(c)
	}
	gauge("repolock_last_run_timestamp_seconds", "When the last run ended.", withMode, unix(run.Ended))
	lastSuccess := previous(prev, "repolock_last_success_timestamp_seconds", labels)
	if history.Implausible(time.Unix(int64(lastSuccess), 0), time.Now()) {
		lastSuccess = 0 // forged, or a clock far off: never carried forward
	}
	if run.Outcome == Success {
		lastSuccess = unix(run.Ended)
	}
	if lastSuccess > 0 {
		gauge("repolock_last_success_timestamp_seconds", "When the last successful run ended.", labels, lastSuccess)
	}
	gauge("repolock_last_exit_code", "Exit code of the last run.", withMode, float64(run.Exit))
	gauge("repolock_last_duration_seconds", "Duration of the last run, lock wait included.", withMode, run.Ended.Sub(run.Started).Seconds())
	gauge("repolock_last_lock_wait_seconds", "How long the last run waited for its lock and its limits' slots.", withMode, run.LockWait.Seconds())
	for _, o := range Outcomes {
		add := 0.0
		if o == run.Outcome {
			add = 1
		}
		counter("repolock_runs_total", "Finished runs by outcome.", with("outcome", o), add)
	}
	lost := 0.0
	if run.Outcome == Lost {
		lost = 1
	}
	counter("repolock_lock_lost_total", "Runs that lost their lock while the command ran.", labels, lost)
	counter("repolock_native_locks_cleared_total", "Backup tools' own locks repolock removed.", labels, float64(run.NativeLocksCleared))
	if run.RenewRTT != nil {
		reg.MustRegister(constMetric{renewRTT(run.RenewRTT, labels, prev)})
	}
	gauge("repolock_build_info", "repolock's version.", prometheus.Labels{"version": run.Version}, 1)
	return reg
}

// renewRTT is the run's renewal histogram added to the previous one of the
// same labels, bucket by bucket (cumulative counts, as Prometheus keeps
// them).
func renewRTT(h prometheus.Histogram, l prometheus.Labels, prev map[string]*dto.MetricFamily) prometheus.Metric {
	var now dto.Metric
	_ = h.Write(&now)
	count, sum := now.GetHistogram().GetSampleCount(), now.GetHistogram().GetSampleSum()
	buckets := map[float64]uint64{}
	for _, b := range now.GetHistogram().GetBucket() {
		buckets[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if old := series(prev, RenewRTTName, l).GetHistogram(); old != nil {
		count, sum = count+old.GetSampleCount(), sum+old.GetSampleSum()
		for _, b := range old.GetBucket() {
			if _, ok := buckets[b.GetUpperBound()]; ok {
				buckets[b.GetUpperBound()] += b.GetCumulativeCount()
			}
		}
	}
	desc := prometheus.NewDesc(RenewRTTName, "Round trips of confirmed session renewals.", nil, l)
	return prometheus.MustNewConstHistogram(desc, count, sum, buckets)
}

// constMetric registers one ready-made metric.
type constMetric struct{ m prometheus.Metric }

func (c constMetric) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c constMetric) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
