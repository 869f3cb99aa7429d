package consullock

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"time"
)

// Holder says who a contender is. It is written to Consul KV for operators
// and consul-template, so it holds identities only: never an environment
// value, an argument list or anything else that could carry a secret.
type Holder struct {
	Host          string `json:"host"`
	PID           int    `json:"pid"`
	User          string `json:"user"`
	Job           string `json:"job,omitempty"`
	NomadAllocID  string `json:"nomad_alloc_id,omitempty"`
	NomadJobID    string `json:"nomad_job_id,omitempty"`
	NomadTaskName string `json:"nomad_task_name,omitempty"`
	Version       string `json:"version"`
}

// LocalHolder describes this process. The Nomad fields come from the
// variables Nomad sets in every task; they are identifiers, not secrets.
func LocalHolder(version, job string) Holder {
	h := Holder{PID: os.Getpid(), Job: job, Version: version}
	h.Host, _ = os.Hostname()
	if u, err := user.Current(); err == nil {
		h.User = u.Username
	} else {
		h.User = strconv.Itoa(os.Getuid())
	}
	h.NomadAllocID = os.Getenv("NOMAD_ALLOC_ID")
	h.NomadJobID = os.Getenv("NOMAD_JOB_ID")
	h.NomadTaskName = os.Getenv("NOMAD_TASK_NAME")
	return h
}

// Record is the JSON value of one contender's entry under
// <prefix>/repos/<key>/lock/<session>.
type Record struct {
	Session string     `json:"session"`
	Mode    Mode       `json:"mode"`
	State   string     `json:"state"` // "waiting" or "holding"
	Holder  Holder     `json:"holder"`
	Since   time.Time  `json:"since"`
	Granted *time.Time `json:"granted,omitempty"`
	Token   uint64     `json:"fencing_token,omitempty"`
	// Slots is the cap on the key's shared holders this contender asks for
	// (exec -slots); read back, its session's name's, never the value's.
	Slots int `json:"slots,omitempty"`
	// CreateIndex is the entry's, filled in when read back.
	CreateIndex uint64 `json:"-"`
	// key and modifyIndex locate the entry for a blocking watch; key is
	// empty for a contender with no entry (StateNoEntry).
	key         string
	modifyIndex uint64
	// order is the CreateIndex of the contender's session: its place in
	// the queue, and its fencing token once granted (trust.go).
	order uint64
}

// Record states.
const (
	StateWaiting = "waiting"
	StateHolding = "holding"
	// StateNoEntry is a contender whose session lives but whose entry a
	// KV write deleted or released: never written, only reported.
	StateNoEntry = "no entry"
)

// String names the holder for people: user@host pid N, then its Nomad
// allocation and its job when it has them. Read from KV, every field is
// advisory and escaped (Escape): a host of escape sequences and newlines
// prints as text, not as a row of its own.
func (h Holder) String() string {
	s := fmt.Sprintf("%s@%s pid %d", h.User, h.Host, h.PID)
	if h.NomadAllocID != "" {
		s += fmt.Sprintf(" (nomad %s/%s alloc %.8s)", h.NomadJobID, h.NomadTaskName, h.NomadAllocID)
	}
	if h.Job != "" {
		s += " job " + h.Job
	}
	return Escape(s)
}
