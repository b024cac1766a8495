package multicursor

import (
	"errors"
	"testing"

	"github.com/tidings/tidings/txlog"
)

func TestRoundTrip(t *testing.T) {
	id := txlog.NewID()
	names := NamesHash([]string{"a", "b", "c"})
	m := Cursor{Log: id, Names: names, Pos: []txlog.Cursor{
		{Log: id, Pos: txlog.AfterTxn(1700000000000000)},
		{Log: id, Pos: txlog.Pos{Txn: 1700000000000123, Op: 4}, Seq: 2},
		{Log: id, Pos: txlog.Pos{Txn: 1699999999000000, Op: 0}},
		{}, // no position yet: cut within its snapshot
	}}
	names = NamesHash([]string{"a", "b", "c", "d"})
	m.Names = names
	got, err := Parse(m.String(), 4, names)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Pos {
		if got.Pos[i] != m.Pos[i] {
			t.Fatalf("position %d: %+v, want %+v", i, got.Pos[i], m.Pos[i])
		}
	}
	if len(m.String()) > 88 {
		t.Fatalf("4 positions take %d characters", len(m.String()))
	}
	for name, c := range map[string]struct {
		s     string
		n     int
		names uint32
	}{
		"other names":    {m.String(), 4, NamesHash([]string{"a", "b"})},
		"wrong count":    {m.String(), 3, names},
		"garbage":        {"!!", 3, names},
		"a plain cursor": {txlog.Cursor{Log: id}.String(), 1, names},
	} {
		if _, err := Parse(c.s, c.n, c.names); !errors.Is(err, txlog.ErrInvalidCursor) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzParse: a compound cursor from outside (SSE's Last-Event-ID)
// never panics the parser, and what parses encodes back to itself.
func FuzzParse(f *testing.F) {
	id := txlog.NewID()
	names := NamesHash([]string{"x", "y"})
	f.Add((&Cursor{Log: id, Names: names, Pos: []txlog.Cursor{{Log: id, Pos: txlog.AfterTxn(5)}, {Log: id, Pos: txlog.Pos{Txn: 3, Op: 1}, Seq: 1}}}).String(), 2)
	f.Add((&Cursor{Log: id, Names: names, Pos: []txlog.Cursor{{Log: id, Pos: txlog.AfterTxn(5)}, {}}}).String(), 2)
	f.Add("", 0)
	f.Add("Ag", 1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 0 || n > 256 { // transport.MaxSubscriptionsPerStream
			return
		}
		m, err := Parse(s, n, names)
		if err != nil {
			if !errors.Is(err, txlog.ErrInvalidCursor) {
				t.Fatalf("error %v is not ErrInvalidCursor", err)
			}
			return
		}
		again, err := Parse(m.String(), n, names)
		if err != nil || len(again.Pos) != len(m.Pos) {
			t.Fatalf("re-encoding fails: %v", err)
		}
		for i := range m.Pos {
			if again.Pos[i] != m.Pos[i] {
				t.Fatalf("position %d changes on re-encoding", i)
			}
		}
	})
}
