// Package crashtest runs a test binary again as a child process and kills
// it with SIGKILL at a moment the test chooses, so that crash tests can
// check what a store recovers after a kill. It is for tests only.
//
// The child is the same test binary, started with -test.run and an
// environment that tells it to act as the child (usually TestMain, or the
// test itself, looks for a variable and runs the child's code instead).
// The child reports what it does as lines on its standard output, one
// whole line per write (for example "ack <txn>" after each acknowledged
// commit); the parent reads them as they come, decides from them (or from
// a timer) when to kill, and after the kill knows exactly which lines the
// child wrote before it died. Lines written before the kill took effect
// are still read and handed over; a last line cut by the kill is dropped
// and its length reported.
//
// A round looks like this:
//
//	c, err := crashtest.Start(crashtest.Options{Run: "^$", Env: []string{"MY_CHILD=" + dir}})
//	if err != nil { ... }
//	c.KillAfter(delay) // or kill from the lines, below
//	res, err := c.Watch(func(line string) error {
//		if line == "ack 100" && !c.Killed() {
//			c.Kill()
//		}
//		return nil
//	})
//
// The package uses the standard library only. It needs a system where a
// process can be killed with SIGKILL and its wait status tells so.
package crashtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// DefaultWatchdog is how long Watch lets a child run before it kills it
// and reports an error, when Options.Watchdog is zero.
const DefaultWatchdog = 20 * time.Second

// Options say how to start the child.
type Options struct {
	// Run is the -test.run pattern the child is started with: "^$" when
	// TestMain hands control to the child's code, or the name of the test
	// that does.
	Run string
	// Env is added to the parent's environment, as "NAME=value" strings.
	Env []string
	// Watchdog bounds the child's life: if it is still running that long
	// after Start, Watch kills it and fails. DefaultWatchdog if zero.
	Watchdog time.Duration
}

// Child is a running child process. Its methods other than Watch are
// meant to be called from the function given to Watch (or before Watch),
// on the goroutine that calls Watch.
type Child struct {
	cmd      *exec.Cmd
	stderr   bytes.Buffer
	lines    chan string
	partial  int // set by the reader before it closes lines
	watchdog time.Duration

	timer  <-chan time.Time
	when   <-chan struct{}
	killed bool
}

// Result is what Watch learned besides the lines.
type Result struct {
	// Stderr is everything the child wrote to its standard error.
	Stderr string
	// Partial is the length of a last line that the kill cut before its
	// newline (0 if the output ended with a whole line). That line is not
	// handed to the line function.
	Partial int
}

// Start starts the test binary (os.Args[0]) again as a child with
// -test.run=opt.Run and opt.Env added to the environment. The caller must
// call Watch, which kills the child and waits for it.
func Start(opt Options) (*Child, error) {
	c := &Child{
		cmd:      exec.Command(os.Args[0], "-test.run="+opt.Run),
		lines:    make(chan string, 64),
		watchdog: opt.Watchdog,
	}
	if c.watchdog == 0 {
		c.watchdog = DefaultWatchdog
	}
	c.cmd.Env = append(os.Environ(), opt.Env...)
	c.cmd.Stderr = &c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go c.read(out)
	return c, nil
}

// read hands the child's lines to Watch until its output ends.
func (c *Child) read(out io.Reader) {
	defer close(c.lines)
	r := bufio.NewReaderSize(out, 64<<10)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// A line without its newline was cut by the kill.
			c.partial = len(line)
			return
		}
		c.lines <- strings.TrimSuffix(line, "\n")
	}
}

// Kill kills the child with SIGKILL now. Killing it again does nothing.
func (c *Child) Kill() {
	if !c.killed {
		c.killed = true
		c.cmd.Process.Kill() // SIGKILL
	}
}

// Killed reports whether Kill was called (by the caller, or by Watch
// itself on a timer, on a channel, or on an error). The line function
// sees every line, also those read after the kill: it checks Killed to
// tell them apart.
func (c *Child) Killed() bool { return c.killed }

// KillAfter arranges for Watch to kill the child d from now, replacing an
// earlier KillAfter.
func (c *Child) KillAfter(d time.Duration) { c.timer = time.After(d) }

// KillWhen arranges for Watch to kill the child once ready is closed (or
// yields a value), replacing an earlier KillWhen. The caller owns whatever
// closes ready, and waits for it to end after Watch returns.
func (c *Child) KillWhen(ready <-chan struct{}) { c.when = ready }

// Watch hands each line of the child's output, without its newline, to
// line, until the child is killed; then it hands over the lines the child
// wrote before it died, waits for it, and returns. It kills the child
// itself, and fails, if the child's output ends first or the watchdog
// expires. Errors that line returns are joined into Watch's error without
// stopping it. Watch fails too if the child died of anything but SIGKILL.
func (c *Child) Watch(line func(string) error) (Result, error) {
	watchdog := time.After(c.watchdog)
	var runErr error
	for !c.killed {
		select {
		case l, ok := <-c.lines:
			if !ok {
				runErr = errors.Join(runErr, errors.New("child ended its output before it was killed"))
				c.Kill()
				continue
			}
			runErr = errors.Join(runErr, line(l))
		case <-c.timer:
			c.Kill()
		case <-c.when:
			c.Kill()
		case <-watchdog:
			runErr = errors.Join(runErr, fmt.Errorf("child still running after %v", c.watchdog))
			c.Kill()
		}
	}
	// Lines written before the kill took effect count too.
	for l := range c.lines {
		runErr = errors.Join(runErr, line(l))
	}
	err := c.cmd.Wait()
	res := Result{Stderr: c.stderr.String(), Partial: c.partial}
	if err == nil {
		return res, errors.Join(runErr, errors.New("child did not die of SIGKILL: it exited with status 0"))
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return res, errors.Join(runErr, fmt.Errorf("child: %v", err))
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		runErr = errors.Join(runErr, fmt.Errorf("child did not die of SIGKILL: %v", err))
	}
	return res, runErr
}
