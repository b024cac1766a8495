package jetstream

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// childEnv carries a child server's configuration: the fault tests run
// NATS servers as processes of their own (this test binary again), so
// that killing one is a SIGKILL, with nothing flushed or closed.
const childEnv = "TIDINGS_TEST_NATS_SERVER"

type childConfig struct {
	Name    string
	Port    int
	Cluster int
	Routes  []string
	Dir     string
}

// runChildServer runs a server until the process is killed, or the test
// process is gone: its end of the child's stdin then closes, so that no
// server outlives a test binary that crashed or timed out (go test would
// wait for the servers, which hold its output open).
func runChildServer(cfg string) {
	var c childConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := server.NewServer(&server.Options{
		ServerName: c.Name, Host: "127.0.0.1", Port: c.Port, JetStream: true, StoreDir: c.Dir,
		NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "tidings", Host: "127.0.0.1", Port: c.Cluster},
		Routes:  server.RoutesFromStr(strings.Join(c.Routes, ",")),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		os.Exit(2)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// childServer is a NATS server in a process of its own.
type childServer struct {
	cfg childConfig
	cmd *exec.Cmd
}

// url is the server's client URL.
func (c *childServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", c.cfg.Port) }

// start runs the server, and returns once it takes connections.
func (c *childServer) start(t testing.TB) {
	t.Helper()
	cfg, _ := json.Marshal(c.cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	cmd.Stderr = os.Stderr
	if _, err := cmd.StdinPipe(); err != nil { // closed when this process ends
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ready <- sc.Scan() && sc.Text() == "ready"
		for sc.Scan() {
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("the server %s did not start", c.cfg.Name)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the server %s did not start in 30s", c.cfg.Name)
	}
	c.cmd = cmd
}

// kill ends the server with SIGKILL and waits for the process.
func (c *childServer) kill() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	c.cmd = nil
}

// runChildCluster starts n servers in processes of their own, routed into
// one cluster; they are killed at the end of the test.
func runChildCluster(t testing.TB, n int) []*childServer {
	t.Helper()
	ports := freePorts(t, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i]))
	}
	var cs []*childServer
	for i := range n {
		c := &childServer{cfg: childConfig{Name: fmt.Sprintf("s%d", i), Port: ports[i], Cluster: ports[n+i], Routes: routes, Dir: t.TempDir()}}
		cs = append(cs, c)
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.kill()
		}
	})
	for _, c := range cs {
		c.start(t)
	}
	return cs
}
