package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidings/tidings/txlog"
)

// TestLeaderKilled: three servers in processes of their own, an R3 stream,
// 16 appenders and a reader following from the start; the stream leader's
// server is killed (SIGKILL) mid-run. Every acknowledged append is in the
// log once, in order, txns strictly increasing; the reader, across the
// failover, sees no gap and no duplicate.
func TestLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers as processes")
	}
	cs := runChildCluster(t, 3)
	var urls []string
	for _, c := range cs {
		urls = append(urls, c.url())
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitJetStream(t, js, 3)
	name := newStreamName()
	l := openLog(t, js, Options{Stream: name, Replicas: 3, Timeout: 2 * time.Second})
	defer l.Close()

	// The reader follows the log from the start, reading again from its
	// last position whenever a read ends.
	var stopRead atomic.Bool
	var read []txlog.Txn
	readErr := make(chan error, 1)
	var rwg sync.WaitGroup
	rwg.Go(func() {
		cur := txlog.Cursor{Log: l.ID()}
		for !stopRead.Load() || cur.Pos.Compare(l.Head()) < 0 {
			for rec, err := range l.Read(cur) {
				if errors.Is(err, txlog.ErrHistoryUnavailable) || errors.Is(err, txlog.ErrCorrupt) {
					readErr <- err
					return
				}
				if err != nil {
					break // a timeout during the election: read again
				}
				read = append(read, rec.Txn)
				cur.Pos = rec.Last()
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	var mu sync.Mutex
	var acked []txlog.Txn
	var ackedAt []time.Time
	failures := 0
	var stop atomic.Bool
	var wg sync.WaitGroup
	for a := range 16 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				txn, err := l.Stage([]txlog.Write{{Ref: txlog.Ref{Collection: "c", ID: fmt.Sprint(a, "-", i)}, Action: txlog.ActionCreate, After: []byte(`{}`)}})
				if err == nil {
					err = l.Wait(txn)
				}
				mu.Lock()
				if err == nil {
					acked = append(acked, txn)
					ackedAt = append(ackedAt, time.Now())
				} else {
					failures++
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitFor := func(n int, what string) {
		t.Helper()
		for deadline := time.Now().Add(90 * time.Second); count() < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				stop.Store(true)
				t.Fatalf("%d appends acknowledged, waiting for %d %s", count(), n, what)
			}
		}
	}
	waitFor(300, "before the kill")
	leader := streamLeader(t, js, name)
	var victim *childServer
	for _, c := range cs {
		if c.cfg.Name == leader {
			victim = c
		}
	}
	if victim == nil {
		t.Fatalf("no server named %q", leader)
	}
	killedAt := time.Now()
	victim.kill()
	before := count()
	waitFor(before+300, "after the kill")
	stop.Store(true)
	wg.Wait()
	stopRead.Store(true)
	rwg.Wait()
	select {
	case err := <-readErr:
		t.Fatalf("the reader: %v", err)
	default:
	}

	// The whole log, read once more.
	var all []txlog.Txn
	for rec, err := range l.Read(txlog.Cursor{Log: l.ID()}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, rec.Txn)
	}
	for i := 1; i < len(all); i++ {
		if all[i] <= all[i-1] {
			t.Fatalf("txn %d after %d at %d", all[i], all[i-1], i)
		}
	}
	in := map[txlog.Txn]int{}
	for _, txn := range all {
		in[txn]++
	}
	for _, txn := range acked {
		if in[txn] != 1 {
			t.Fatalf("acknowledged txn %d is in the log %d times", txn, in[txn])
		}
	}
	if len(read) != len(all) {
		t.Fatalf("the reader read %d records, the log has %d", len(read), len(all))
	}
	for i := range read {
		if read[i] != all[i] {
			t.Fatalf("the reader's record %d is %d, the log's %d", i, read[i], all[i])
		}
	}
	// The longest wait between two acknowledgements around the kill.
	gap := time.Duration(0)
	for i := 1; i < len(ackedAt); i++ {
		if ackedAt[i].After(killedAt) && ackedAt[i-1].Before(killedAt.Add(30*time.Second)) {
			gap = max(gap, ackedAt[i].Sub(ackedAt[i-1]))
		}
	}
	t.Logf("%d appends acknowledged (%d after the kill of %s), %d failed; %d records in the log; longest pause %v",
		len(acked), len(acked)-before, leader, failures, len(all), gap.Round(time.Millisecond))
}

// waitJetStream waits until the cluster can place a stream of the given
// number of replicas: JetStream answers requests as soon as it has a
// meta leader, before every server is known to be online, and a stream
// of 3 replicas made then is refused with "no suitable peers".
func waitJetStream(t testing.TB, js jetstream.JetStream, replicas int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	name := newStreamName()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{name}, Replicas: replicas, Storage: jetstream.MemoryStorage,
		})
		if err == nil {
			err = js.DeleteStream(ctx, name)
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream cannot place a stream of %d replicas: %v", replicas, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamLeader is the name of the server that leads the stream.
func streamLeader(t testing.TB, js jetstream.JetStream, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.Cluster.Leader
}
