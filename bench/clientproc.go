package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The HTTP subscribers run in a process of their own (this program again,
// started with clientEnv set): 10k connections need 10k descriptors at
// each end, which one process may not be allowed (a hard RLIMIT_NOFILE of
// 20000 here, and raising it needs privileges), and it keeps the server's
// memory per subscriber free of the clients'. Both processes still share
// the machine's cores, as they would in one process.
//
// The protocol, one line each way:
//
//	child → parent: "ready", "progress <events>", "mark <m>", "result <json>"
//	parent → child: "finish <last> <drain ns>"; closing stdin ends the child.
const clientEnv = "TIDINGS_BENCH_CLIENTS"

// clientSpec is what the child needs: the endpoint and the workload.
type clientSpec struct {
	Endpoint Endpoint `json:"endpoint"`
	Workload Workload `json:"workload"`
}

// clientMain is the child process: it runs the clients and reports.
func clientMain(spec string) int {
	raiseFileLimit()
	var s clientSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "bench client:", err)
		return 2
	}
	c := startClients(s.Endpoint, &s.Workload)
	defer c.close()
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		// Marks as soon as they complete (the writer waits on them);
		// progress and readiness every 100ms.
		ready := false
		var mark uint64
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			c.marks.mu.Lock()
			changed := c.marks.changed
			c.marks.mu.Unlock()
			if m := c.marks.complete.Load(); m != mark {
				mark = m
				say("mark %d", m)
			}
			select {
			case <-done:
				return
			case <-changed:
			case <-tick.C:
				if !ready && c.allReady() {
					ready = true
					say("ready")
				}
				say("progress %d", c.delivered())
			}
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var last uint64
		var drain time.Duration
		if _, err := fmt.Sscanf(in.Text(), "finish %d %d", &last, &drain); err != nil {
			fmt.Fprintln(os.Stderr, "bench client: unknown command", in.Text())
			return 2
		}
		res, _ := json.Marshal(c.finish(last, drain))
		say("result %s", res)
	}
	return 0
}

// remoteClients is the parent's side of a client process.
type remoteClients struct {
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	isReady   atomic.Bool
	progress  atomic.Uint64
	mu        sync.Mutex
	mark      uint64
	markMoved chan struct{}
	results   chan FleetResult
	exited    chan error
}

// spawnClients starts the client process.
func spawnClients(ep Endpoint, w *Workload) (*remoteClients, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	spec, _ := json.Marshal(clientSpec{Endpoint: ep, Workload: *w})
	r := &remoteClients{markMoved: make(chan struct{}), results: make(chan FleetResult, 1), exited: make(chan error, 1)}
	r.cmd = exec.Command(exe)
	r.cmd.Env = append(os.Environ(), clientEnv+"="+string(spec))
	r.cmd.Stderr = os.Stderr
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		r.listen(stdout)
		r.exited <- r.cmd.Wait()
	}()
	return r, nil
}

func (r *remoteClients) listen(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		word, arg, _ := strings.Cut(sc.Text(), " ")
		switch word {
		case "ready":
			r.isReady.Store(true)
		case "progress":
			n, _ := strconv.ParseUint(arg, 10, 64)
			r.progress.Store(n)
		case "mark":
			m, _ := strconv.ParseUint(arg, 10, 64)
			r.mu.Lock()
			if m > r.mark {
				r.mark = m
				close(r.markMoved)
				r.markMoved = make(chan struct{})
			}
			r.mu.Unlock()
		case "result":
			var res FleetResult
			if err := json.Unmarshal([]byte(arg), &res); err != nil {
				fmt.Fprintln(os.Stderr, "bench: the client process's result:", err)
				continue
			}
			r.results <- res
		}
	}
}

func (r *remoteClients) ready() bool       { return r.isReady.Load() }
func (r *remoteClients) delivered() uint64 { return r.progress.Load() }

func (r *remoteClients) waitMark(m uint64, deadline time.Time) bool {
	for {
		r.mu.Lock()
		if r.mark >= m {
			r.mu.Unlock()
			return true
		}
		ch := r.markMoved
		r.mu.Unlock()
		d := time.Until(deadline)
		if d <= 0 {
			return false
		}
		t := time.NewTimer(d)
		select {
		case <-ch:
			t.Stop()
		case <-t.C:
			return false
		}
	}
}

// errClientsGone: the client process ended before it reported.
var errClientsGone = errors.New("the client process ended without a result")

func (r *remoteClients) finish(last uint64, drain time.Duration) FleetResult {
	fmt.Fprintf(r.stdin, "finish %d %d\n", last, drain)
	select {
	case res := <-r.results:
		return res
	case err := <-r.exited:
		r.exited <- err
		return FleetResult{Err: fmt.Sprintf("%v: %v", errClientsGone, err)}
	}
}

// close ends the client process: it closes its connections and exits.
func (r *remoteClients) close() {
	r.stdin.Close()
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
}
