package jetstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidings/tidings/txlog"
)

// bigWrite is a create of a document of size random bytes: with the
// servers' 1 MiB messages, 3 MiB is a record in 4 parts.
func bigWrite(id string, size int) []txlog.Write {
	img := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(size), byte(len(id))})
	r.Read(img)
	return []txlog.Write{{Ref: txlog.Ref{Collection: "c", ID: id}, Action: txlog.ActionCreate, After: img}}
}

// readAll reads the log after a cursor, failing the test on an error.
func readAll(t *testing.T, l *Log, after txlog.Cursor) []txlog.Record {
	t.Helper()
	var recs []txlog.Record
	for rec, err := range l.Read(after) {
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// sameRecords compares records by txn and writes, images byte for byte.
func sameRecords(t *testing.T, what string, got, want []txlog.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Txn != w.Txn || len(g.Writes) != len(w.Writes) {
			t.Fatalf("%s: record %d is txn %d with %d writes, want txn %d with %d", what, i, g.Txn, len(g.Writes), w.Txn, len(w.Writes))
		}
		for j := range w.Writes {
			if g.Writes[j].Ref != w.Writes[j].Ref || !bytes.Equal(g.Writes[j].After, w.Writes[j].After) {
				t.Fatalf("%s: record %d, write %d differs", what, i, j)
			}
		}
	}
}

// TestLargeRecord: a record larger than a message goes in parts, staged
// between small ones without waiting for them, and every reader gives it
// back whole, in its place: one by one, through a consumer, from a cursor
// found by bisecting the stream (a reopened log knows no sequences), by
// Follow, and as the last record of a log opened again. On one server and
// on an R3 stream.
func TestLargeRecord(t *testing.T) {
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprintf("R%d", replicas), func(t *testing.T) {
			url := runServer(t).ClientURL()
			if replicas == 3 {
				url = runCluster(t, 3)[0].ClientURL()
			}
			js := connect(t, url)
			name := newStreamName()
			l := openLog(t, js, Options{Stream: name, Replicas: replicas})
			var want []txlog.Record
			stage := func(ws []txlog.Write) {
				t.Helper()
				txn, err := l.Stage(ws)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, txlog.Record{Txn: txn, Writes: ws})
			}
			stage(write("s1"))
			stage(bigWrite("b1", 3<<20))
			stage(write("s2"))
			stage(bigWrite("b2", 1<<20+1))
			if err := l.Wait(want[len(want)-1].Txn); err != nil {
				t.Fatal(err)
			}
			if l.Head() != want[3].Last() {
				t.Fatalf("head %v, want %v", l.Head(), want[3].Last())
			}
			sameRecords(t, "one by one", readAll(t, l, txlog.Cursor{Log: l.ID()}), want)
			for i := range consumerFrom {
				stage(write(fmt.Sprint("m", i)))
			}
			stage(bigWrite("b3", 1<<20+1))
			if err := l.Wait(want[len(want)-1].Txn); err != nil {
				t.Fatal(err)
			}
			sameRecords(t, "through a consumer", readAll(t, l, txlog.Cursor{Log: l.ID()}), want)
			id := l.ID()
			l.Close()

			l = openLog(t, js, Options{Stream: name})
			defer l.Close()
			if l.Head() != want[len(want)-1].Last() {
				t.Fatalf("reopened on a record in parts: head %v, want %v", l.Head(), want[len(want)-1].Last())
			}
			// Cursors on each side of the records in parts (reading big
			// records is slow under the race detector: the servers
			// answer a get in JSON, base64).
			for _, i := range []int{0, 1, 2, 3, len(want) - 2, len(want) - 1} {
				after := txlog.Cursor{Log: id, Pos: want[i].Last()}
				sameRecords(t, fmt.Sprintf("after record %d", i), readAll(t, l, after), want[i+1:])
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var followed []txlog.Record
			for rec, err := range l.Follow(ctx, txlog.Cursor{Log: id, Pos: want[0].Last()}) {
				if err != nil {
					t.Fatal(err)
				}
				if followed = append(followed, rec); len(followed) == len(want)-1 {
					break
				}
			}
			sameRecords(t, "followed", followed, want[1:])
		})
	}
}

// TestLargeRecordSentAgain: a batch sent again after it landed (its
// acknowledgement lost, say) is refused by the stream, which is then read
// to find the record there: the append succeeds, and the record is in the
// stream once.
func TestLargeRecordSentAgain(t *testing.T) {
	l := openLog(t, connect(t, runServer(t).ClientURL()), Options{Memory: true})
	defer l.Close()
	appendOne(t, l, "s1")
	l.mu.Lock()
	txn, _, end, msgs, err := l.prepareParts(bigWrite("b1", 3<<20), false, 0)
	l.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	id := l.msgID(txn)
	for attempt := range 2 {
		if err := l.settleParts(msgs, end, id); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := l.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq != end || info.State.Msgs != end {
		t.Fatalf("the stream holds %d messages up to %d, want %d", info.State.Msgs, info.State.LastSeq, end)
	}
	// Once more with another record's ID at that place: a conflict.
	if err := l.settleParts(msgs, end, l.msgID(txn+1)); !errors.Is(err, ErrConflict) {
		t.Fatalf("with another ID: %v, want ErrConflict", err)
	}
}

// TestLargeRecordConflict: a record in parts staged by a log that has not
// seen another appender's record is refused with ErrConflict, nothing of
// it lands, and the log's next append goes after the other's record.
func TestLargeRecordConflict(t *testing.T) {
	s := runServer(t)
	name := newStreamName()
	a := openLog(t, connect(t, s.ClientURL()), Options{Stream: name, Memory: true})
	defer a.Close()
	b := openLog(t, connect(t, s.ClientURL()), Options{Stream: name})
	defer b.Close()
	first := appendOne(t, a, "a1")
	if _, err := b.Stage(bigWrite("b1", 3<<20)); !errors.Is(err, ErrConflict) {
		t.Fatalf("a stale record in parts: %v, want ErrConflict", err)
	}
	big := bigWrite("b2", 3<<20)
	txn, err := b.Stage(big)
	if err != nil {
		t.Fatal(err)
	}
	if txn <= first {
		t.Fatalf("txn %d after %d", txn, first)
	}
	recs := readAll(t, b, txlog.Cursor{Log: b.ID()})
	sameRecords(t, "the stream", recs, []txlog.Record{{Txn: first, Writes: write("a1")}, {Txn: txn, Writes: big}})
}

// TestLargeRecordNotAllowed: on a stream made without atomic batches, a
// record larger than a message is refused at Stage with ErrTooLarge, and
// the log goes on.
func TestLargeRecordNotAllowed(t *testing.T) {
	js := connect(t, runServer(t).ClientURL())
	name := newStreamName()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".records"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, js, Options{Stream: name})
	defer l.Close()
	if _, err := l.Stage(bigWrite("b1", 2<<20)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Stage of 2 MiB: %v", err)
	}
	txn := appendOne(t, l, "s1")
	if l.Head().Txn != txn {
		t.Fatalf("after a refusal: head %v", l.Head())
	}
}

// TestLargeRecordRetention: retention drops messages, not records. When
// it has dropped the first parts of a record, the record is gone: Oldest
// is after it, a cursor before it is refused, and a reader from Oldest
// gets the records after it.
func TestLargeRecordRetention(t *testing.T) {
	l := openLog(t, connect(t, runServer(t).ClientURL()), Options{Memory: true, MaxRecords: 3})
	defer l.Close()
	first := appendOne(t, l, "s1")
	big := bigWrite("b1", 3<<20) // 4 parts: the stream keeps the last 3
	txn, err := l.Stage(big)
	if err != nil {
		t.Fatal(err)
	}
	rec := txlog.Record{Txn: txn, Writes: big}
	gone := rec.Last()
	if got := l.Oldest(); got != gone {
		t.Fatalf("Oldest %v, want %v (the record in parts, partly dropped)", got, gone)
	}
	next := appendOne(t, l, "s2")
	if got := l.Oldest(); got != gone {
		t.Fatalf("Oldest %v after one more record, want %v", got, gone)
	}
	for _, err := range l.Read(txlog.Cursor{Log: l.ID(), Pos: txlog.Pos{Txn: first}}) {
		if !errors.Is(err, txlog.ErrHistoryUnavailable) {
			t.Fatalf("a cursor before the dropped record: %v", err)
		}
		break
	}
	recs := readAll(t, l, txlog.Cursor{Log: l.ID(), Pos: gone})
	if len(recs) != 1 || recs[0].Txn != next {
		t.Fatalf("from Oldest: %d records", len(recs))
	}
}

// FuzzParts: part headers as the stream may hold them (log data from
// outside), fed to a reader's assembly. A header parses only in the
// spelling Stage writes; a record comes out only from a run of parts 1/n
// to n/n, with their bytes in order; anything else is ErrCorrupt, and the
// assembly never panics.
func FuzzParts(f *testing.F) {
	for _, seed := range []string{"", "1/1", "1/2,2/2", ",1/3,2/3,3/3,", "2/2", "1/3,2/3,1/3", "0/1", "1/1001", "01/2", "+1/1", "1/2,2/3", "3/2"} {
		f.Add(seed, []byte("0123456789"))
	}
	f.Fuzz(func(t *testing.T, headers string, data []byte) {
		hs := strings.Split(headers, ",")
		var as assembly
		var run []int // the parts gathered, by index into hs
		for k, h := range hs {
			chunk := data[:min(len(data), k)]
			i, n, perr := parsePart(h)
			if perr == nil && h != "" && h != strconv.Itoa(i)+"/"+strconv.Itoa(n) {
				t.Fatalf("%q parsed as %d/%d", h, i, n)
			}
			hdr := nats.Header{}
			if h != "" {
				hdr.Set(hdrPart, h)
			}
			out, done, err := as.add(uint64(k+1), hdr, chunk)
			if err != nil {
				if !errors.Is(err, txlog.ErrCorrupt) {
					t.Fatalf("part %d %q: %v, not ErrCorrupt", k, h, err)
				}
				if perr == nil && (len(run) == 0 && i == 1 || len(run) > 0 && i == len(run)+1 && n == as.n) {
					t.Fatalf("part %d %q refused in place: %v", k, h, err)
				}
				as, run = assembly{}, nil
				continue
			}
			if perr != nil {
				t.Fatalf("part %d %q taken, though it does not parse", k, h)
			}
			run = append(run, k)
			if !done {
				continue
			}
			var want []byte
			for j, at := range run {
				if hs[at] != "" && hs[at] != strconv.Itoa(j+1)+"/"+strconv.Itoa(len(run)) {
					t.Fatalf("a record from parts %v", run)
				}
				want = append(want, data[:min(len(data), at)]...)
			}
			if !bytes.Equal(out, want) || as.first != uint64(run[0]+1) {
				t.Fatalf("a record of %d bytes from %d at %d, want %d", len(out), len(run), as.first, len(want))
			}
			run = nil
		}
	})
}

// TestConsumerGone: the server drops the consumer of a reader, and of a
// follower, in the middle of a read (an operator, a failover): the read
// goes on from where it was, every record once, in order, and the
// follower gets the records appended after.
func TestConsumerGone(t *testing.T) {
	js := connect(t, runServer(t).ClientURL())
	l := openLog(t, js, Options{Memory: true})
	defer l.Close()
	var want []txlog.Txn
	for i := range 300 {
		txn, err := l.Stage(write(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, txn)
	}
	if err := l.Wait(want[len(want)-1]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drop := func() int {
		n := 0
		for c := range l.stream.ConsumerNames(ctx).Name() {
			if err := js.DeleteConsumer(ctx, l.opt.Stream, c); err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}

	var got []txlog.Txn
	dropped := 0
	for rec, err := range l.Read(txlog.Cursor{Log: l.ID()}) {
		if err != nil {
			t.Fatalf("Read: after %d records: %v", len(got), err)
		}
		// 256 records a fetch: drop the consumer in the first and
		// in the second.
		if got = append(got, rec.Txn); len(got) == 10 || len(got) == 270 {
			dropped += drop()
		}
	}
	if dropped < 2 {
		t.Fatalf("Read: %d consumers dropped: the read used fewer", dropped)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Read: %d records, want %d in order", len(got), len(want))
	}

	got, dropped = nil, 0
	for rec, err := range l.Follow(ctx, txlog.Cursor{Log: l.ID()}) {
		if err != nil {
			t.Fatalf("Follow: after %d records: %v", len(got), err)
		}
		got = append(got, rec.Txn)
		switch len(got) {
		case 10:
			dropped += drop()
		case 300:
			for i := range 5 {
				want = append(want, appendOne(t, l, fmt.Sprint("after", i)))
			}
		}
		if len(got) == len(want) {
			break
		}
	}
	if dropped != 1 {
		t.Fatalf("Follow: %d consumers dropped, want its one", dropped)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Follow: %d records, want %d in order", len(got), len(want))
	}
}
