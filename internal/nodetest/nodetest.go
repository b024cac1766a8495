// Package nodetest is what the tests that run real JavaScript clients in
// Node share: the check that Node and the pinned packages are there, and
// a node process whose output a test reads line by line.
package nodetest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Need skips the test without node, or without one of the packages in
// dir's node_modules, except in CI (CI set), where .ci/run installs them
// (npm ci from the lockfile in dir) and their absence is a failure.
func Need(t testing.TB, dir string, packages ...string) {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	}
	for _, p := range packages {
		if missing != "" {
			break
		}
		if _, err := os.Stat(filepath.Join(dir, "node_modules", filepath.FromSlash(p), "package.json")); err != nil {
			missing = p + " is not installed: run npm ci in " + filepath.ToSlash(dir)
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(missing)
	}
	t.Skip(missing)
}

// Options say how Start runs node.
type Options struct {
	Dir  string   // the working directory: where node_modules is
	Args []string // node's arguments: a script and its own, or "-"
	Env  []string // added to the environment
	// Stdin is node's input (a script, for "-"); nil gives a pipe,
	// Process.Stdin.
	Stdin io.Reader
	// Timeout bounds the process; default 120s.
	Timeout time.Duration
	// Stderr also gets node's stderr (which Process.Stderr keeps);
	// default os.Stderr.
	Stderr io.Writer
	// Grace is how long node may take to exit at the end of the test,
	// once its stdin is closed, before it is killed; default none.
	Grace time.Duration
}

// Process is a running node, whose output the test reads a line at a time.
type Process struct {
	// Lines are node's stdout lines; closed when node has exited.
	Lines <-chan string
	// Stdin writes to node, unless Options.Stdin was given.
	Stdin io.WriteCloser

	stderr syncBuffer
	done   chan struct{}
}

// Start runs node; at the end of the test its stdin is closed, and it is
// killed unless it exits within Options.Grace.
func Start(t testing.TB, o Options) *Process {
	t.Helper()
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 120 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, "node", o.Args...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.WaitDelay = 5 * time.Second
	p := &Process{done: make(chan struct{})}
	also := o.Stderr
	if also == nil {
		also = os.Stderr
	}
	cmd.Stderr = io.MultiWriter(&p.stderr, also)
	var err error
	if o.Stdin != nil {
		cmd.Stdin = o.Stdin
	} else if p.Stdin, err = cmd.StdinPipe(); err != nil {
		cancel()
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	lines := make(chan string, 4096)
	p.Lines = lines
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.Stdin != nil {
			p.Stdin.Close()
		}
		if o.Grace > 0 {
			select {
			case <-p.done:
			case <-time.After(o.Grace):
			}
		}
		cancel()
		for range lines {
		}
		<-p.done
	})
	return p
}

// Done is closed when node has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stderr is what node wrote to stderr so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// Next returns node's next line, failing the test if node exits or
// prints nothing within timeout.
func (p *Process) Next(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.Lines:
		if !ok {
			<-p.done
			t.Fatalf("node exited; its stderr:\n%s", p.Stderr())
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("node printed nothing for %v", timeout)
	}
	return ""
}

// syncBuffer is a bytes.Buffer safe for the writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
