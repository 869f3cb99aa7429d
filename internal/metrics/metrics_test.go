package metrics

import (
	"context"
	"os"
	"testing"
	"time"
)

func read(t *testing.T, path string) func(name string, labels map[string]string) float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mfs, err := parse(f)
	if err != nil {
		t.Fatalf("the textfile does not parse: %v", err)
	}
	return func(name string, labels map[string]string) float64 { return previous(mfs, name, labels) }
}

// Counters carry over, and the last success survives a later failure.
func TestTextfileCarriesOver(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC)
	run := Run{Job: "nightly", Repository: "photos", Mode: "shared", Outcome: Success, Started: t0, Ended: t0.Add(time.Minute),
		LockWait: 2 * time.Second, Version: "test"}
	if err := Write(context.Background(), Sink{Textfile: dir}, run); err != nil {
		t.Fatal(err)
	}
	failed := run
	failed.Outcome, failed.Exit, failed.Started, failed.Ended, failed.NativeLocksCleared = Failure, 11, t0.Add(time.Hour), t0.Add(time.Hour+time.Minute), 2
	if err := Write(context.Background(), Sink{Textfile: dir}, failed); err != nil {
		t.Fatal(err)
	}
	get := read(t, TextfileName(dir, "nightly"))
	job := map[string]string{"job": "nightly", "repository": "photos"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"repolock_last_success_timestamp_seconds", job, float64(t0.Add(time.Minute).Unix())},
		{"repolock_last_run_timestamp_seconds", job, float64(t0.Add(time.Hour + time.Minute).Unix())},
		{"repolock_last_exit_code", job, 11},
		{"repolock_last_duration_seconds", job, 60},
		{"repolock_last_lock_wait_seconds", job, 2},
		{"repolock_runs_total", map[string]string{"outcome": "success"}, 1},
		{"repolock_runs_total", map[string]string{"outcome": "failure"}, 1},
		{"repolock_runs_total", map[string]string{"outcome": "lost"}, 0},
		{"repolock_native_locks_cleared_total", job, 2},
		{"repolock_build_info", map[string]string{"version": "test"}, 1},
	} {
		if got := get(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("textfile directory holds %d files, want only the job's", len(entries))
	}
}

// The renewal round trips of each run add to the previous runs' histogram,
// bucket by bucket.
func TestRenewRTTHistogramCarriesOver(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	for i, rtts := range [][]float64{{0.002, 0.3}, {0.4, 0.45, 7}} {
		h := NewRenewRTT()
		for _, v := range rtts {
			h.Observe(v)
		}
		run := Run{Job: "wan", Repository: "shared", Mode: "shared", Outcome: Success, Started: t0.Add(time.Duration(i) * time.Hour),
			Ended: t0.Add(time.Duration(i)*time.Hour + time.Minute), Version: "test", RenewRTT: h}
		if err := Write(context.Background(), Sink{Textfile: dir}, run); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(TextfileName(dir, "wan"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mfs, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	h := series(mfs, RenewRTTName, map[string]string{"job": "wan", "repository": "shared"}).GetHistogram()
	if h.GetSampleCount() != 5 || h.GetSampleSum() < 8.15 || h.GetSampleSum() > 8.16 {
		t.Fatalf("histogram count %d, sum %v; want 5 and 8.152", h.GetSampleCount(), h.GetSampleSum())
	}
	want := map[float64]uint64{0.0025: 1, 0.25: 1, 0.5: 4, 5: 4}
	for _, b := range h.GetBucket() {
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
}

// Issue 23: a last success in the future (a forged textfile, a clock far
// off) is implausible and not carried over by the next run.
func TestFutureSuccessNotCarried(t *testing.T) {
	dir := t.TempDir()
	forged := `# TYPE repolock_last_success_timestamp_seconds gauge
repolock_last_success_timestamp_seconds{job="nightly",repository="photos"} 4070908800
`
	if err := os.WriteFile(TextfileName(dir, "nightly"), []byte(forged), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	run := Run{Job: "nightly", Repository: "photos", Mode: "shared", Outcome: Failure, Exit: 1, Started: now, Ended: now, Version: "test"}
	if err := Write(context.Background(), Sink{Textfile: dir}, run); err != nil {
		t.Fatal(err)
	}
	job := map[string]string{"job": "nightly", "repository": "photos"}
	if got := read(t, TextfileName(dir, "nightly"))("repolock_last_success_timestamp_seconds", job); got != 0 {
		t.Errorf("the forged 2099 success was carried over: %v", got)
	}
}
