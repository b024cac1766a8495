// Command cluster runs the spells site (package examples/spells/site) on
// three tidings nodes, each a process of its own, sharing one JetStream
// stream as their log, on a cluster of three NATS servers embedded in
// processes of their own:
//
//	go run ./examples/cluster
//
// Every node serves the page, tidings and Electric's shape endpoint on its
// own port (8080, 8081 and 8082 by default). A spell moved on one node's
// page shows on all three pages; kill a node's process (the banner gives
// the command) and reload its page on another node: it works, and
// streams resume there from their cursors. Each node keeps its own
// documents and indexes by applying the stream; checkpoints are shared in
// a JetStream object store. Ctrl-C stops everything; the data directory
// is temporary unless -data names one.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	if child() {
		return
	}
	addrs := flag.String("addrs", "localhost:8080,localhost:8081,localhost:8082", "the nodes' addresses, comma-separated")
	data := flag.String("data", "", "directory of the NATS servers' data (default: temporary)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := Start(ctx, Config{Addrs: strings.Split(*addrs, ","), Data: *data})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	fmt.Print(c.Banner())
	<-ctx.Done()
	c.Stop()
}

// child runs a NATS server or a node, if this process is one (this program
// again, started by the cluster), and reports whether it was.
func child() bool {
	run, cfg := runNATS, os.Getenv(natsEnv)
	if cfg == "" {
		run, cfg = runNode, os.Getenv(nodeEnv)
	}
	if cfg == "" {
		return false
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	return true
}
