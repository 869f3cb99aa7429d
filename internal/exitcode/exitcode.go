// Package exitcode is the one table of repolock's exit codes (DESIGN "Exit
// codes"). Outcomes carry their code (an ExitCode method); cmd/repolock maps
// every other error to one of these in one place.
package exitcode

import "syscall"

// Exit codes of repolock's own outcomes; a command that ran to its end
// gives its own code instead.
const (
	OK            = 0
	Stale         = 1  // status: a job has no success within its expect_every
	Usage         = 64 // bad command-line usage
	Unreachable   = 69 // Consul unreachable
	Unknown       = 70 // the guard died before proving the command's group gone
	Busy          = 75 // lock not acquired within wait
	LockLost      = 76 // lock lost while the command ran; the command was stopped
	Denied        = 77 // Consul ACL denied
	Config        = 78 // configuration invalid
	NotExecutable = 126
	NotFound      = 127
)

// Signal is the shell's code for a process killed by sig: 128+N.
func Signal(sig syscall.Signal) int { return 128 + int(sig) }

// Coder is an outcome that knows its exit code.
type Coder interface{ ExitCode() int }
