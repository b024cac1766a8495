package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsEnv carries a NATS server's configuration to its process.
const natsEnv = "TIDINGS_CLUSTER_NATS"

type natsConfig struct {
	Name    string
	Port    int
	Cluster int
	Routes  []string
	Dir     string
}

// runNATS is a NATS server's process: JetStream, in a cluster with the
// others. It prints "serving URL" once it takes connections, and ends on
// SIGTERM or SIGINT, or when its stdin closes (the cluster's process is
// gone).
func runNATS(cfgJSON string) error {
	var cfg natsConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return err
	}
	s, err := server.NewServer(&server.Options{
		ServerName: cfg.Name, Host: "127.0.0.1", Port: cfg.Port,
		JetStream: true, StoreDir: cfg.Dir, NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "tidings", Host: "127.0.0.1", Port: cfg.Cluster},
		Routes:  server.RoutesFromStr(strings.Join(cfg.Routes, ",")),
	})
	if err != nil {
		return err
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return errors.New("the server did not start")
	}
	fmt.Printf("serving %s\n", s.ClientURL())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
