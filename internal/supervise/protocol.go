package supervise

// The control protocol between repolock (R) and the guard (G) is one text
// line per message: a verb, then space-separated fields. Strings are
// strconv-quoted so that any byte (newlines, invalid UTF-8) survives.
//
// R→G on fd 3, once, before anything else:
//
//	path "Q"            the resolved program
//	arg "Q"             one per argument, Args[0] first
//	env "Q"             one per environment entry
//	dir "Q"             working directory (optional)
//	killsig N           signal number
//	killtimeout NS      nanoseconds (0: SIGKILL right after the kill signal)
//	deadline SOFT HARD  the initial deadline (optional, as below); armed
//	                    before the fork, and if it has passed by then G does
//	                    not fork but reports startfail deadline
//	start               fork and exec now
//
// R→G afterwards:
//
//	sig N               send signal N to the command's process group
//	deadline SOFT HARD  CLOCK_BOOTTIME ns: kill signal at SOFT, SIGKILL at
//	                    the earlier of HARD and the time SOFT fired plus
//	                    the kill timeout; replaces the previous deadline;
//	                    0 0 disarms (either may be 0 alone). Ignored once
//	                    SOFT or HARD has fired: a fired deadline is final
//	stop                kill signal now, SIGKILL after the kill timeout
//	interrupt N         signal N to the group now (a forwarded stop request),
//	                    SIGKILL after the kill timeout unless one is
//	                    already scheduled: a command that ignores the
//	                    request is gone before a supervisor's own SIGKILL
//
// End of file on fd 3 means R is gone: G SIGKILLs the group and every
// descendant of its own at once.
//
// The kill signal and SIGKILL of stop, of a deadline, of the command's exit
// and of R's death go to the group and to every descendant of G (processes
// that left the group with setsid or setpgid included); sig goes to the
// group only.
//
// G→R on fd 4:
//
//	started PID             the command runs; PID is also its pgid
//	startfail KIND ERRNO "Q" it did not start (KIND exec, chdir, deadline
//	                        or guard)
//	fired                   the soft or hard deadline fired; sent once, before
//	                        the signal, so before any exited it causes and
//	                        always before empty
//	exited WAITSTATUS       the command was reaped (raw wait status)
//	empty                   no process of the group and no descendant of G
//	                        is left; G exits
//
// Every message after start is far below PIPE_BUF, so its write is atomic
// and a timed-out write never leaves half a line in the pipe.

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Verbs of the protocol.
const (
	msgPath        = "path"
	msgArg         = "arg"
	msgEnv         = "env"
	msgDir         = "dir"
	msgKillSig     = "killsig"
	msgKillTimeout = "killtimeout"
	msgStart       = "start"

	msgSig       = "sig"
	msgDeadline  = "deadline"
	msgStop      = "stop"
	msgInterrupt = "interrupt"

	msgStarted   = "started"
	msgStartFail = "startfail"
	msgFired     = "fired"
	msgExited    = "exited"
	msgEmpty     = "empty"
)

// Kinds of startfail.
const (
	failExec     word = "exec"
	failChdir    word = "chdir"
	failDeadline word = "deadline"
	failGuard    word = "guard"
)

// word is a field written bare, unlike a string, which is quoted.
type word string

// line formats one message with its trailing newline.
func line(verb string, fields ...any) string {
	var b strings.Builder
	b.WriteString(verb)
	for _, f := range fields {
		b.WriteByte(' ')
		switch f := f.(type) {
		case string:
			b.WriteString(strconv.Quote(f))
		default:
			fmt.Fprint(&b, f)
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// splitLine separates the verb from the rest of a message.
func splitLine(l string) (verb, rest string) {
	verb, rest, _ = strings.Cut(strings.TrimSuffix(l, "\n"), " ")
	return verb, rest
}

// ints parses exactly n space-separated integers.
func ints(rest string, n int) ([]int64, error) {
	f := strings.Fields(rest)
	if len(f) != n {
		return nil, fmt.Errorf("want %d numbers, got %q", n, rest)
	}
	out := make([]int64, n)
	for i, s := range f {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// encodeSpec renders the start-up messages for spec, ending with start.
func encodeSpec(s Spec) string {
	var b strings.Builder
	b.WriteString(line(msgPath, s.Path))
	for _, a := range s.Args {
		b.WriteString(line(msgArg, a))
	}
	for _, e := range s.Env {
		b.WriteString(line(msgEnv, e))
	}
	if s.Dir != "" {
		b.WriteString(line(msgDir, s.Dir))
	}
	b.WriteString(line(msgKillSig, int(s.KillSignal)))
	b.WriteString(line(msgKillTimeout, int64(s.KillTimeout)))
	if s.Soft != 0 || s.Hard != 0 {
		b.WriteString(line(msgDeadline, int64(s.Soft), int64(s.Hard)))
	}
	b.WriteString(line(msgStart))
	return b.String()
}

// decodeSpec reads start-up messages up to and including start.
func decodeSpec(r *bufio.Reader) (Spec, error) {
	var s Spec
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return s, fmt.Errorf("read spec: %w", err)
		}
		verb, rest := splitLine(l)
		switch verb {
		case msgStart:
			if s.Path == "" || len(s.Args) == 0 {
				return s, fmt.Errorf("spec without path or args")
			}
			return s, nil
		case msgPath, msgArg, msgEnv, msgDir:
			v, err := strconv.Unquote(rest)
			if err != nil {
				return s, fmt.Errorf("bad %s message %q: %w", verb, rest, err)
			}
			switch verb {
			case msgPath:
				s.Path = v
			case msgArg:
				s.Args = append(s.Args, v)
			case msgEnv:
				s.Env = append(s.Env, v)
			case msgDir:
				s.Dir = v
			}
		case msgKillSig, msgKillTimeout:
			n, err := ints(rest, 1)
			if err != nil {
				return s, fmt.Errorf("bad %s message: %w", verb, err)
			}
			if verb == msgKillSig {
				s.KillSignal = syscall.Signal(n[0])
			} else {
				s.KillTimeout = time.Duration(n[0])
			}
		case msgDeadline:
			n, err := ints(rest, 2)
			if err != nil {
				return s, fmt.Errorf("bad %s message: %w", verb, err)
			}
			s.Soft, s.Hard = Boottime(n[0]), Boottime(n[1])
		default:
			return s, fmt.Errorf("unexpected message %q before start", verb)
		}
	}
}
