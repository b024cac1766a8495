package main

import (
	"bytes"
	"context"
	"net/url"
	"sync"
	"time"

	"github.com/centrifugal/centrifuge"
)

// centrifugeSys is github.com/centrifugal/centrifuge: a Node with its
// default in-memory broker, every connection subscribed on the server side
// to the channel "bench" when it connects, publications without history
// (history and recovery are opt-in, and the generic client here does not
// speak centrifuge's recovery protocol). Each client has a queue and a
// writer goroutine; a client whose queue exceeds ClientQueueMaxSize
// (default 1 MB) is disconnected as slow.
type centrifugeSys struct {
	node   *centrifuge.Node
	lb     *loopback
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closes []func() error
}

// centrifugeChannel is the one broadcast channel standing in for the set.
const centrifugeChannel = "bench"

// centrifugeConnect is the connect command a client sends (in process
// through HandleReadFrame, over SSE in the cf_connect parameter).
const centrifugeConnect = `{"id":1,"connect":{}}`

// centrifugeNoPing turns off centrifuge's application-level pings, which
// a client would have to answer.
var centrifugeNoPing = centrifuge.PingPongConfig{PingInterval: -1, PongTimeout: -1}

func openCentrifuge(tr string) func(w *Workload) (system, error) {
	return func(w *Workload) (system, error) {
		node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelNone})
		if err != nil {
			return nil, err
		}
		node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
			return centrifuge.ConnectReply{
				Credentials:   &centrifuge.Credentials{UserID: ""},
				Subscriptions: map[string]centrifuge.SubscribeOptions{centrifugeChannel: {}},
			}, nil
		})
		node.OnConnect(func(*centrifuge.Client) {})
		if err := node.Run(); err != nil {
			return nil, err
		}
		c := &centrifugeSys{node: node}
		c.ctx, c.cancel = context.WithCancel(context.Background())
		if tr == TransportSSE {
			h := centrifuge.NewSSEHandler(node, centrifuge.SSEConfig{PingPongConfig: centrifugeNoPing})
			if c.lb, err = serveLoopback(h); err != nil {
				node.Shutdown(context.Background())
				return nil, err
			}
		}
		return c, nil
	}
}

func (c *centrifugeSys) publish(_ uint64, p []byte) error {
	_, err := c.node.Publish(centrifugeChannel, p)
	return err
}

// subscribe connects an in-process client through a Transport of its own,
// as centrifuge's own benchmarks do: its Write is called by the client's
// writer goroutine with each frame of JSON replies and pushes.
func (c *centrifugeSys) subscribe(f *fleet, r *receiver) error {
	t := &centrifugeTransport{f: f, r: r}
	client, closeFn, err := centrifuge.NewClient(c.ctx, c.node, t)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.closes = append(c.closes, closeFn)
	c.mu.Unlock()
	centrifuge.HandleReadFrame(client, bytes.NewReader([]byte(centrifugeConnect)), 64<<10)
	return nil
}

func (c *centrifugeSys) endpoint() Endpoint {
	q := url.Values{"cf_connect": {centrifugeConnect}}
	return c.lb.endpoint(Endpoint{Format: TransportSSE, Method: "GET", Path: "/?" + q.Encode(), Resume: ResumeLastEventID})
}

func (c *centrifugeSys) close() {
	if c.lb != nil {
		c.lb.close()
	}
	c.cancel()
	for _, fn := range c.closes {
		fn()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.node.Shutdown(ctx)
}

// centrifugeTransport is an in-process centrifuge.Transport: bidirectional
// (commands come through HandleReadFrame), JSON, no pings.
type centrifugeTransport struct {
	f      *fleet
	r      *receiver
	mu     sync.Mutex
	closed bool
}

func (t *centrifugeTransport) Name() string                      { return "bench" }
func (t *centrifugeTransport) AcceptProtocol() string            { return "" }
func (t *centrifugeTransport) Protocol() centrifuge.ProtocolType { return centrifuge.ProtocolTypeJSON }
func (t *centrifugeTransport) ProtocolVersion() centrifuge.ProtocolVersion {
	return centrifuge.ProtocolVersion2
}
func (t *centrifugeTransport) Unidirectional() bool                      { return false }
func (t *centrifugeTransport) Emulation() bool                           { return false }
func (t *centrifugeTransport) DisabledPushFlags() uint64                 { return 0 }
func (t *centrifugeTransport) PingPongConfig() centrifuge.PingPongConfig { return centrifugeNoPing }

func (t *centrifugeTransport) Write(msg []byte) error { return t.WriteMany(msg) }

func (t *centrifugeTransport) WriteMany(msgs ...[]byte) error {
	now := nowNano()
	for _, m := range msgs {
		if seq, sent, ok := parseEvent(m); ok {
			now = t.f.deliver(t.r, seq, sent, now)
		}
	}
	return nil
}

// Close is centrifuge disconnecting the client (a slow one, or at the end).
func (t *centrifugeTransport) Close(centrifuge.Disconnect) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		t.f.disconnected(t.r)
	}
	return nil
}
