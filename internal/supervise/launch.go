//go:build linux

package supervise

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// selfExe re-executes the running binary, even if the file on disk was
// replaced since, so R and G always speak the same protocol.
const selfExe = "/proc/self/exe"

// guardEnv is the guard's own environment. The command's travels in the
// spec; the guard needs nothing but what configures a race-enabled build
// (tests) the way repolock's was.
func guardEnv() []string {
	env := []string{}
	if v, ok := os.LookupEnv("GORACE"); ok {
		env = append(env, "GORACE="+v)
	}
	return env
}

var sigpipeOnce sync.Once

// catchSIGPIPE routes SIGPIPE to a channel nobody reads. Ignoring it instead
// would be inherited by the guard and the command across exec.
func catchSIGPIPE() {
	sigpipeOnce.Do(func() { signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE) })
}

// guardStdio returns R's standard files for the guard, with /dev/null in
// place of a closed one: a closed fd 0–2 would make the fork fail.
func guardStdio() ([]*os.File, func(), error) {
	files := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			f.Close()
		}
	}
	for i, f := range files {
		if f != nil {
			if _, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err == nil {
				continue
			}
		}
		mode := os.O_WRONLY
		if i == 0 {
			mode = os.O_RDONLY
		}
		n, err := os.OpenFile(os.DevNull, mode, 0)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("supervise: %w", err)
		}
		files[i] = n
		opened = append(opened, n)
	}
	return files, closeAll, nil
}

// guardProc is how R waits for one guard: directly, or through the PID-1
// reaper.
type guardProc struct {
	pid     int
	wait    func() // returns once the guard was reaped
	release func() // called once, after wait
}

// isPID1 is a variable so that a test can run the PID-1 code path.
var isPID1 = func() bool { return os.Getpid() == 1 }

// startGuard starts the guard process. Outside PID 1 it is awaited by pid
// only, never wait4(-1), which would steal other children of the program.
func startGuard(argv []string, attr *os.ProcAttr) (*guardProc, error) {
	start := func() (*os.Process, error) { return os.StartProcess(selfExe, argv, attr) }
	if isPID1() {
		return reaper.start(start)
	}
	proc, err := start()
	if err != nil {
		return nil, err
	}
	return &guardProc{
		pid:     proc.Pid,
		wait:    func() { _, _ = proc.Wait() },
		release: func() {},
	}, nil
}
