package jetstream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tidings/tidings/txlog"
	"github.com/tidings/tidings/txlog/logtest"
)

// TestConformance runs txlog/logtest against a log on an embedded server.
func TestConformance(t *testing.T) {
	s := runServer(t)
	js := connect(t, s.ClientURL())
	logtest.Run(t, func(t *testing.T, opt logtest.Options) txlog.Log {
		o := Options{Memory: true}
		if opt.Retention {
			o.MaxRecords = 500
		}
		return openLog(t, js, o)
	})
}

// TestConformanceCluster runs txlog/logtest against a log on an R3
// stream of an in-process cluster of 3 servers.
func TestConformanceCluster(t *testing.T) {
	servers := runCluster(t, 3)
	js := connect(t, servers[0].ClientURL())
	logtest.Run(t, func(t *testing.T, opt logtest.Options) txlog.Log {
		o := Options{Replicas: 3}
		if opt.Retention {
			o.MaxRecords = 500
		}
		return openLog(t, js, o)
	})
}

func write(id string) []txlog.Write {
	return []txlog.Write{{Ref: txlog.Ref{Collection: "c", ID: id}, Action: txlog.ActionCreate, After: []byte(`{}`)}}
}

func appendOne(t *testing.T, l *Log, id string) txlog.Txn {
	t.Helper()
	txn, err := l.Stage(write(id))
	if err == nil {
		err = l.Wait(txn)
	}
	if err != nil {
		t.Fatal(err)
	}
	return txn
}

// TestReopen: a log opened again on its stream has its identity, its
// records and its head, and its txns go on upward even if the clock went
// back.
func TestReopen(t *testing.T) {
	s := runServer(t)
	js := connect(t, s.ClientURL())
	name := newStreamName()
	l := openLog(t, js, Options{Stream: name})
	first := appendOne(t, l, "a")
	second := appendOne(t, l, "b")
	id, head := l.ID(), l.Head()
	l.Close()

	past := time.UnixMicro(int64(first) - 1e6)
	l = openLog(t, js, Options{Stream: name, Now: func() time.Time { return past }})
	defer l.Close()
	if l.ID() != id || l.Head() != head {
		t.Fatalf("reopened: %v %v, was %v %v", l.ID(), l.Head(), id, head)
	}
	third := appendOne(t, l, "c")
	if third <= second {
		t.Fatalf("txn %d after %d", third, second)
	}
	var got []txlog.Txn
	for rec, err := range l.Read(txlog.Cursor{Log: id}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec.Txn)
	}
	if len(got) != 3 || got[0] != first || got[1] != second || got[2] != third {
		t.Fatalf("records %v", got)
	}
}

// TestRecreated: a stream deleted and made again under the same name is
// another log: a cursor of the old one is refused.
func TestRecreated(t *testing.T) {
	s := runServer(t)
	js := connect(t, s.ClientURL())
	name := newStreamName()
	l := openLog(t, js, Options{Stream: name})
	appendOne(t, l, "a")
	old := txlog.Cursor{Log: l.ID(), Pos: l.Head()}
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, js, Options{Stream: name})
	defer l.Close()
	appendOne(t, l, "a")
	appendOne(t, l, "b")
	if l.ID() == old.Log {
		t.Fatal("the same identity for a new stream")
	}
	for _, err := range l.Read(old) {
		if !errors.Is(err, txlog.ErrHistoryUnavailable) {
			t.Fatalf("an old cursor: %v", err)
		}
		return
	}
	t.Fatal("an old cursor read nothing, not even an error")
}

// TestSilentStart: an ordered consumer asked for a sequence retention has
// dropped starts at the first it has, without a word; the reader must say
// ErrHistoryUnavailable, not read on from there.
func TestSilentStart(t *testing.T) {
	s := runServer(t)
	l := openLog(t, connect(t, s.ClientURL()), Options{Memory: true, MaxRecords: 10})
	defer l.Close()
	for i := range 100 {
		appendOne(t, l, fmt.Sprint(i))
	}
	var got error
	l.consume(context.Background(), 1, func(_ txlog.Record, err error) bool {
		got = err
		return false
	})
	if !errors.Is(got, txlog.ErrHistoryUnavailable) {
		t.Fatalf("a consumer from a dropped sequence: %v", got)
	}
	// And one by one: a dropped sequence is not there.
	if _, err := l.get(context.Background(), 1); !errors.Is(err, txlog.ErrHistoryUnavailable) {
		t.Fatalf("a get of a dropped sequence: %v", err)
	}
}
