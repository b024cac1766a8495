package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	tjs "github.com/tidings/tidings/txlog/jetstream"
)

// The stream the nodes share, and the bucket of their checkpoints.
const (
	streamName = "spells"
	bucketName = "spells-checkpoints"
)

// Config says where the nodes listen and where the servers keep data.
type Config struct {
	Addrs []string // one node per address; port 0 picks one
	Data  string   // the NATS servers' data; a temporary directory if ""
	// NodeLog, if set, receives the nodes' standard error (what they log),
	// instead of this process's standard error.
	NodeLog func(node int) io.Writer
	// CheckpointEvery and CheckpointKeep are the nodes'
	// broker.CheckpointOptions.Every and Keep (0: their defaults). The
	// stream is purged below the oldest checkpoint kept.
	CheckpointEvery int64
	CheckpointKeep  int
}

// Cluster is the running example: three NATS server processes and a node
// process per address, each this program again.
type Cluster struct {
	Servers []*Process
	Nodes   []*Process
	cfg     Config
	tmp     string // removed by Stop
}

// Process is a NATS server's or a tidings node's process.
type Process struct {
	Name string
	URL  string // a node's site, or a server's client URL
	env  string // its configuration
	log  io.Writer
	cmd  *exec.Cmd
}

// PID is the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Kill ends the process with SIGKILL, as a crash would.
func (p *Process) Kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// start runs the process, and returns once it says what it serves: its
// first line of output, "serving URL".
func (p *Process) start() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), p.env)
	cmd.Stderr = os.Stderr
	if p.log != nil {
		cmd.Stderr = p.log
	}
	// The process ends when this one does: its stdin closes.
	if _, err := cmd.StdinPipe(); err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		url := ""
		if sc.Scan() {
			url, _ = strings.CutPrefix(sc.Text(), "serving ")
		}
		ready <- url
		for sc.Scan() {
		}
	}()
	select {
	case p.URL = <-ready:
	case <-time.After(60 * time.Second):
	}
	if p.URL == "" {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("%s did not start", p.Name)
	}
	p.cmd = cmd
	return nil
}

// Start starts the NATS servers, makes the stream (3 replicas) and the
// checkpoints' bucket, and starts a node per address, returning once
// every node serves.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	c := &Cluster{cfg: cfg}
	if c.cfg.Data == "" {
		tmp, err := os.MkdirTemp("", "tidings-cluster-")
		if err != nil {
			return nil, err
		}
		c.cfg.Data, c.tmp = tmp, tmp
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		// The ports are picked free, then bound by the servers: if another
		// process took one meanwhile, start them again on others.
		if err = c.startServers(); err == nil {
			break
		}
		c.stopServers()
	}
	if err == nil {
		err = c.prepare(ctx)
	}
	if err != nil {
		c.Stop()
		return nil, err
	}
	for i, addr := range cfg.Addrs {
		n := &Process{Name: fmt.Sprintf("node %d", i)}
		if cfg.NodeLog != nil {
			n.log = cfg.NodeLog(i)
		}
		n.env = c.nodeEnv(addr)
		if err := n.start(); err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	return c, nil
}

func (c *Cluster) nodeEnv(addr string) string {
	cfg, _ := json.Marshal(nodeConfig{Addr: addr, NATS: c.NATSURLs(), CheckpointEvery: c.cfg.CheckpointEvery, CheckpointKeep: c.cfg.CheckpointKeep})
	return nodeEnv + "=" + string(cfg)
}

// Restart starts a node killed before, on its address: it loads the
// newest shared checkpoint and replays the stream after it.
func (c *Cluster) Restart(n *Process) error {
	n.env = c.nodeEnv(strings.TrimPrefix(n.URL, "http://"))
	return n.start()
}

// NATSURLs are the servers' client URLs.
func (c *Cluster) NATSURLs() []string {
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.URL)
	}
	return urls
}

// startServers starts three NATS server processes with JetStream, routed
// to each other.
func (c *Cluster) startServers() error {
	ports, err := freePorts(6) // a client and a cluster port each
	if err != nil {
		return err
	}
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3+i]))
	}
	for i := range 3 {
		cfg, _ := json.Marshal(natsConfig{
			Name: fmt.Sprintf("nats-%d", i), Port: ports[i], Cluster: ports[3+i], Routes: routes,
			Dir: filepath.Join(c.cfg.Data, fmt.Sprintf("nats-%d", i)),
		})
		s := &Process{Name: fmt.Sprintf("nats-%d", i), env: natsEnv + "=" + string(cfg)}
		if err := s.start(); err != nil {
			return err
		}
		c.Servers = append(c.Servers, s)
	}
	return nil
}

// freePorts returns n ports free on loopback now.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		defer ln.Close()
	}
	return ports, nil
}

// prepare makes the stream and the bucket once the servers can place
// three replicas (JetStream answers before every server is known to be
// up), so that the nodes find them.
func (c *Cluster) prepare(ctx context.Context) error {
	nc, err := nats.Connect(strings.Join(c.NATSURLs(), ","))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		l, err := tjs.Open(octx, js, tjs.Options{Stream: streamName, Replicas: 3})
		if err == nil {
			_, err = tjs.OpenCheckpoints(octx, js, bucketName, l, 3)
			l.Close()
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the stream and the bucket: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Banner is what the command prints: the nodes, and what to try.
func (c *Cluster) Banner() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tidings cluster example: %d NATS servers (JetStream, stream %q, 3 replicas), %d nodes\n\n", len(c.Servers), streamName, len(c.Nodes))
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "  %s  %s  (pid %d)\n", n.Name, n.URL, n.PID())
	}
	for _, s := range c.Servers {
		fmt.Fprintf(&b, "  %s  %s  (pid %d)\n", s.Name, s.URL, s.PID())
	}
	fmt.Fprintf(&b, `
Open the pages; a spell moved on one shows on all. Then:
  kill -9 %d     # node 0 crashes: reload its page on another node
  kill -9 %d     # a NATS server crashes: the stream goes on on the other two
  curl -X POST %s/tidings/write -H 'Content-Type: application/json' -d '{"writes":[{"action":"create","collection":"spells","id":"9","data":{"name":"Spark","element":"fire"}}]}'
`, c.Nodes[0].PID(), c.Servers[0].PID(), c.Nodes[len(c.Nodes)-1].URL)
	return b.String()
}

// Stop ends the nodes (SIGTERM: they close cleanly, with a checkpoint),
// then the servers.
func (c *Cluster) Stop() {
	stop(c.Nodes)
	c.stopServers()
	if c.tmp != "" {
		os.RemoveAll(c.tmp)
	}
}

func (c *Cluster) stopServers() {
	stop(c.Servers)
	c.Servers = nil
}

// stop ends processes with SIGTERM, and SIGKILL after 20 seconds.
func stop(ps []*Process) {
	var waits []chan struct{}
	for _, p := range ps {
		if p.cmd == nil || p.cmd.ProcessState != nil {
			continue
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		waits = append(waits, done)
	}
	for _, done := range waits {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
		}
	}
	for _, p := range ps {
		if p.cmd != nil && p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
		}
	}
}
