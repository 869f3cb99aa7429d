package plugin

import (
	"fmt"
	"time"
)

// NativeLock is one of a backup tool's own repository locks, as the tool
// describes it; what repolock records when it removes one.
type NativeLock struct {
	ID        string    `json:"id"`
	Host      string    `json:"host,omitempty"`
	User      string    `json:"user,omitempty"`
	PID       int       `json:"pid,omitempty"`
	Time      time.Time `json:"time,omitzero"`
	Exclusive bool      `json:"exclusive"`
}

// String describes the lock for a log line.
func (n NativeLock) String() string {
	kind := "shared"
	if n.Exclusive {
		kind = "exclusive"
	}
	s := fmt.Sprintf("%s %s", kind, n.ID)
	if n.Host != "" {
		s += fmt.Sprintf(" of pid %d on %s", n.PID, n.Host)
	}
	if !n.Time.IsZero() {
		s += fmt.Sprintf(", age %s", time.Since(n.Time).Round(time.Second))
	}
	return s
}
