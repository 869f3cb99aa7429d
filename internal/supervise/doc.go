// Package supervise starts the backup command and controls it until it and
// every process of its process group are gone. It knows processes only,
// nothing about Consul.
//
// Three processes take part:
//
//	repolock (R) ──pipes──▶ guard (G) ──fork/exec──▶ command (C)
//
// G is the repolock binary itself, re-executed through /proc/self/exe with
// GuardArg as its first argument (main and every TestMain call
// MaybeRunGuard first). G exists because nothing inside R can act after R is
// SIGKILLed: G notices R's death as end-of-file on its control pipe and
// SIGKILLs C's whole process group and all its own descendants. G is also a
// child subreaper, so grandchildren that C leaves behind are re-parented to
// G and reaped there, and it holds the dead man's switch: deadlines on
// CLOCK_BOOTTIME after which it stops the group even if R is frozen. The
// first deadline travels with the command's spec and is armed before the
// fork; G does not fork once it has passed. A deadline that fired is final,
// and G tells R so.
//
// C runs in its own process group (pgid = C's pid) with PDEATHSIG SIGKILL
// tied to G. G reports "empty" only when C was reaped, no process of the
// group is left alive and G has no child left (so no descendant at all),
// which is what lets the caller release a lock safely.
//
// C inherits R's standard input, output and error. Because C runs in a
// process group of its own, a terminal treats it as a background job: if it
// reads from the controlling terminal it is stopped by SIGTTIN, so commands
// must take passwords from files or the environment.
//
// Processes that leave the group (setsid, setpgid) are still descendants of
// G: the kill signal and SIGKILL of a stop, a deadline, C's exit or R's death
// reach them too (G walks /proc/<pid>/task/*/children), but signals R
// forwards with Signal reach the group only. If G itself is SIGKILLed, R
// can kill only the group: G's other descendants are re-parented beyond
// R's reach.
//
// When R is PID 1 (a container without an init), orphans of the whole
// namespace become R's children; a reaper goroutine then reaps every child
// while a Process is live (see reaper.go).
//
// The control protocol is described in protocol.go.
package supervise
