package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/examples/spells/site"
	tjs "github.com/tidings/tidings/txlog/jetstream"
)

// nodeEnv carries a node's configuration to its process.
const nodeEnv = "TIDINGS_CLUSTER_NODE"

type nodeConfig struct {
	Addr string
	NATS []string
	// CheckpointEvery and CheckpointKeep are broker.CheckpointOptions'
	// Every and Keep (0: their defaults).
	CheckpointEvery int64
	CheckpointKeep  int
}

// runNode is a node's process: a broker on the shared stream, with shared
// checkpoints, serving the spells site on its address. It prints
// "serving URL" once it serves, and ends on SIGTERM or SIGINT, or when its
// stdin closes (the cluster's process is gone).
func runNode(cfgJSON string) error {
	var cfg nodeConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	nc, err := nats.Connect(strings.Join(cfg.NATS, ","), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, 50*time.Second)
	defer cancel()
	var b *broker.Broker
	for {
		// The servers may be electing leaders (one was just killed): what
		// cannot be reached yet is tried again, until octx ends.
		if b, err = openBroker(octx, js, cfg); err == nil {
			break
		}
		if octx.Err() != nil {
			return err
		}
		slog.Warn("cluster node: starting again", "err", err)
		time.Sleep(time.Second)
	}
	defer b.Close()
	// Every node seeds what is missing: the first to get there writes
	// the spells, the others find them (after a conflict, run again).
	if err := site.Seed(octx, b); err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	mux, srv, _ := site.Mux(b, nil)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Printf("serving http://%s\n", ln.Addr())
	select {
	case err = <-errc:
	case <-ctx.Done():
		slog.Info("cluster node: shutting down", "addr", ln.Addr())
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	srv.Shutdown(sctx) // streams end with shutting_down and their cursors
	hs.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// openBroker opens the log, the checkpoints and the broker of a node.
func openBroker(ctx context.Context, js jetstream.JetStream, cfg nodeConfig) (*broker.Broker, error) {
	// A 2 s bound on each request: an append in flight to a killed leader
	// is sent again after it (its message ID makes that safe), not after
	// the default 10 s.
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := tjs.Open(rctx, js, tjs.Options{Stream: streamName, Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	cps, err := tjs.OpenCheckpoints(rctx, js, bucketName, l, 3)
	if err != nil {
		l.Close()
		return nil, err
	}
	b, err := broker.New(broker.Options{Log: l, Schema: site.Schema(),
		Checkpoint: broker.CheckpointOptions{Store: cps, Every: cfg.CheckpointEvery, Keep: cfg.CheckpointKeep}})
	if err != nil {
		l.Close()
		return nil, err
	}
	return b, nil
}
