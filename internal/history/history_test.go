package history

import (
	"testing"
	"time"
)

func TestMerge(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	hour := func(h int) time.Time { return now.Add(time.Duration(h) * time.Hour) }
	forged := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)

	// A success is added beside the others' (shared jobs ending together).
	prev := &Run{Job: "a", Token: 10, Exit: 0, LastSuccess: map[string]time.Time{"a": hour(-2), "b": hour(-1)}}
	got := merge(prev, Run{Job: "c", Token: 11, Exit: 0, Ended: hour(0)}, now)
	if got.Job != "c" || len(got.LastSuccess) != 3 || !got.LastSuccess["c"].Equal(hour(0)) || !got.LastSuccess["a"].Equal(hour(-2)) {
		t.Errorf("a success beside two others: %+v", got)
	}
	// A failure keeps the successes and adds none.
	got = merge(prev, Run{Job: "a", Token: 11, Exit: 1, Ended: hour(0)}, now)
	if got.Exit != 1 || !got.LastSuccess["a"].Equal(hour(-2)) {
		t.Errorf("a failure: %+v", got)
	}
	// A fenced holder's late write (an earlier grant) leaves the later
	// grant's record; only its own success would be merged in.
	got = merge(&Run{Job: "new", Token: 20, Exit: 0, LastSuccess: map[string]time.Time{"new": hour(-1)}},
		Run{Job: "old", Token: 12, Exit: 76, LockLost: true, Ended: hour(0)}, now)
	if got.Job != "new" || got.Token != 20 || got.LockLost || len(got.LastSuccess) != 1 {
		t.Errorf("an earlier grant's late write replaced the later record: %+v", got)
	}
	got = merge(&Run{Job: "new", Token: 20, Exit: 0}, Run{Job: "old", Token: 12, Exit: 0, Ended: hour(0)}, now)
	if got.Job != "new" || !got.LastSuccess["old"].Equal(hour(0)) {
		t.Errorf("an earlier shared grant's success was not merged: %+v", got)
	}
	// A success in the future is implausible and not carried forward.
	got = merge(&Run{Job: "a", Token: 1, LastSuccess: map[string]time.Time{"a": forged, "b": hour(-1)}}, Run{Job: "a", Token: 2, Exit: 1, Ended: hour(0)}, now)
	if _, ok := got.LastSuccess["a"]; ok || !got.LastSuccess["b"].Equal(hour(-1)) {
		t.Errorf("a forged future success was carried forward: %+v", got.LastSuccess)
	}
	if got.NativeLocksCleared == nil || got.Notes == nil {
		t.Errorf("lists must be [] for consul-template, got %+v %+v", got.NativeLocksCleared, got.Notes)
	}
	if !Implausible(now.Add(Skew+time.Second), now) || Implausible(now.Add(Skew-time.Second), now) {
		t.Error("Implausible does not allow exactly Skew of clock difference")
	}
}
