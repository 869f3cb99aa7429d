// Package exitcode is the one table of repolock's exit codes (README "Exit
// codes"). run.Of is the one place an error is given one of them.
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
	Internal      = 71 // an error no rule classifies; the message says what failed
	Busy          = 75 // lock not acquired within wait
	LockLost      = 76 // lock lost while the command ran; the command was stopped
	Denied        = 77 // Consul ACL denied
	Config        = 78 // configuration invalid
	NotExecutable = 126
	NotFound      = 127
)

// Signal is the shell's code for a process killed by sig: 128+N.
func Signal(sig syscall.Signal) int { return 128 + int(sig) }
