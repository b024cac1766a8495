package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
}

// Cluster is the running example: three NATS servers in this process, and
// a node process per address.
type Cluster struct {
	servers []*server.Server
	Nodes   []*Node
	tmp     string // removed by Stop
}

// Node is a tidings node's process.
type Node struct {
	URL string
	cmd *exec.Cmd
}

// PID is the node's process ID.
func (n *Node) PID() int { return n.cmd.Process.Pid }

// Kill ends the node's process with SIGKILL, as a crash would.
func (n *Node) Kill() {
	n.cmd.Process.Kill()
	n.cmd.Wait()
}

// Start starts the NATS servers, makes the stream (3 replicas) and the
// checkpoints' bucket, and starts a node per address, returning once
// every node serves.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	c := &Cluster{}
	if cfg.Data == "" {
		tmp, err := os.MkdirTemp("", "tidings-cluster-")
		if err != nil {
			return nil, err
		}
		cfg.Data, c.tmp = tmp, tmp
	}
	// The cluster's ports are picked free, then bound by the servers: if
	// another process took one meanwhile, start again on others.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = c.startServers(cfg.Data); err == nil {
			break
		}
		c.stopServers()
	}
	if err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.prepare(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	for _, addr := range cfg.Addrs {
		n, err := c.startNode(addr)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	return c, nil
}

// natsURLs are the servers' client URLs.
func (c *Cluster) natsURLs() []string {
	var urls []string
	for _, s := range c.servers {
		urls = append(urls, s.ClientURL())
	}
	return urls
}

// startServers starts three NATS servers with JetStream, routed to each
// other.
func (c *Cluster) startServers(data string) error {
	ports := make([]int, 3)
	var routes []string
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	for i, port := range ports {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("nats-%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: filepath.Join(data, fmt.Sprintf("nats-%d", i)), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "tidings", Host: "127.0.0.1", Port: port},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			return err
		}
		go s.Start()
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		if !s.ReadyForConnections(20 * time.Second) {
			return errors.New("a NATS server did not start")
		}
	}
	return nil
}

// prepare makes the stream and the bucket once the servers can place
// three replicas (JetStream answers before every server is known to be
// up), so that the nodes find them.
func (c *Cluster) prepare(ctx context.Context) error {
	nc, err := nats.Connect(strings.Join(c.natsURLs(), ","))
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

// startNode starts a node process on addr and waits for its URL.
func (c *Cluster) startNode(addr string) (*Node, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cfg, _ := json.Marshal(nodeConfig{Addr: addr, NATS: c.natsURLs()})
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), nodeEnv+"="+string(cfg))
	cmd.Stderr = os.Stderr
	// The node ends when this process does: its stdin closes.
	if _, err := cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
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
	case url := <-ready:
		if url == "" {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("the node on %s did not start", addr)
		}
		return &Node{URL: url, cmd: cmd}, nil
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the node on %s did not start in 60s", addr)
	}
}

// Banner is what the command prints: the nodes, and what to try.
func (c *Cluster) Banner() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tidings cluster example: 3 NATS servers (JetStream, stream %q, 3 replicas), %d nodes\n\n", streamName, len(c.Nodes))
	for i, n := range c.Nodes {
		fmt.Fprintf(&b, "  node %d  %s  (pid %d)\n", i, n.URL, n.PID())
	}
	fmt.Fprintf(&b, `
Open the pages; a spell moved on one shows on all. Then:
  kill -9 %d     # node 0 crashes: reload its page on another node
  curl -X POST %s/tidings/write -H 'Content-Type: application/json' -d '{"writes":[{"action":"create","collection":"spells","id":"9","data":{"name":"Spark","element":"fire"}}]}'
`, c.Nodes[0].PID(), c.Nodes[len(c.Nodes)-1].URL)
	return b.String()
}

// Stop ends the nodes (SIGTERM: they close cleanly, with a checkpoint),
// then the servers.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		if n.cmd.ProcessState == nil {
			n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, n := range c.Nodes {
		if n.cmd.ProcessState == nil {
			done := make(chan struct{})
			go func() { n.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				n.Kill()
			}
		}
	}
	c.stopServers()
	if c.tmp != "" {
		os.RemoveAll(c.tmp)
	}
}

// stopServers shuts the NATS servers down.
func (c *Cluster) stopServers() {
	for _, s := range c.servers {
		s.Shutdown()
	}
	for _, s := range c.servers {
		s.WaitForShutdown()
	}
	c.servers = nil
}
