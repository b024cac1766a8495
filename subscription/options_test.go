package subscription

import (
	"errors"
	"testing"
	"time"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/txlog"
)

func TestParseFields(t *testing.T) {
	tests := []struct {
		in   string
		want Fields
	}{
		{"", DefaultFields},
		{"  ", DefaultFields},
		{"action", FieldAction},
		{"document", FieldDocument},
		{"prev,diff", FieldPrev | FieldDiff},
		{" action , document ,index ", DefaultFields | FieldIndex},
		{"action,document,prev,diff,index", allFields},
		{"diff,diff", FieldDiff},
		{"index,action", FieldAction | FieldIndex},
	}
	for _, tt := range tests {
		got, err := ParseFields(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseFields(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"Action", "actions", "action,", ",action", "action,,diff", "data", "action;diff", "prev diff", "\x00"} {
		got, err := ParseFields(in)
		if !errors.Is(err, ErrInvalidOptions) || got != 0 {
			t.Errorf("ParseFields(%q) = %v, %v; want 0, ErrInvalidOptions", in, got, err)
		}
	}
}

func TestFieldsStringRoundTrip(t *testing.T) {
	if s := (FieldDiff | FieldAction | FieldIndex).String(); s != "action,diff,index" {
		t.Errorf("String = %q, want fields in their fixed order", s)
	}
	if s := Fields(0).String(); s != "" {
		t.Errorf("Fields(0).String() = %q", s)
	}
	for f := Fields(1); f <= allFields; f++ {
		got, err := ParseFields(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFields(%q) = %v, %v; want %v", f.String(), got, err, uint8(f))
		}
	}
	// Unknown bits are not named, so they do not survive the round trip.
	if s := (FieldAction | 1<<7).String(); s != "action" {
		t.Errorf("String with an unknown bit = %q", s)
	}
}

func TestOptionsNormalize(t *testing.T) {
	got, err := Options{}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Fields: DefaultFields, SnapshotPageSize: DefaultSnapshotPageSize, Buffer: DefaultBuffer, BufferBytes: DefaultBufferBytes}
	if got != want {
		t.Errorf("zero Options normalized to %+v, want %+v", got, want)
	}

	set := Options{Fields: FieldDiff, Snapshot: true, SnapshotPageSize: MaxSnapshotPageSize, Cursor: "c", Updates: true,
		Data: true, Buffer: 1, BufferBytes: 1, Heartbeat: time.Second}
	if got, err := set.Normalize(); err != nil || got != set {
		t.Errorf("Normalize(%+v) = %+v, %v; want it unchanged", set, got, err)
	}
	if got, err := (Options{SnapshotPageSize: 1}).Normalize(); err != nil || got.SnapshotPageSize != 1 {
		t.Errorf("page size 1: %+v, %v", got, err)
	}

	for _, bad := range []Options{
		{Fields: 1 << 5},
		{Fields: FieldAction | 1<<7},
		{SnapshotPageSize: -1},
		{SnapshotPageSize: MaxSnapshotPageSize + 1},
		{Buffer: -1},
		{BufferBytes: -1},
		{Heartbeat: -time.Nanosecond},
	} {
		if _, err := bad.Normalize(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Normalize(%+v) = %v, want ErrInvalidOptions", bad, err)
		}
	}
}

func TestTargets(t *testing.T) {
	ref := txlog.Ref{Collection: "spells", ID: "1"}
	doc := Document(ref)
	if doc.IsSet() || doc.String() != `Ref(Collection("spells"), "1")` {
		t.Errorf("Document: %v %v", doc.IsSet(), doc)
	}
	coll := Collection("spells")
	if !coll.IsSet() || coll.String() != `Documents(Collection("spells"))` {
		t.Errorf("Collection: %v %s", coll.IsSet(), coll)
	}

	fire, err := Match("by_element", "fire")
	if err != nil {
		t.Fatal(err)
	}
	fireValue, _ := index.ValueOf("fire")
	fire2, err := Match("by_element", fireValue)
	if err != nil {
		t.Fatal(err)
	}
	if !fire.IsSet() || len(fire.Terms) != 1 || fire.Terms[0] != fireValue || len(fire2.Terms) != 1 || fire2.Terms[0] != fireValue {
		t.Errorf("Match with a Go value and with an index.Value: %v / %v", fire.Terms, fire2.Terms)
	}
	if fire.String() != `Match(Index("by_element"), "fire")` {
		t.Errorf("Match.String() = %s", fire)
	}
	if _, err := Match("by_element", make(chan int)); !errors.Is(err, ErrInvalidTarget) {
		t.Errorf("a term that is no JSON value: %v", err)
	}
	if all, err := Match("all"); err != nil || len(all.Terms) != 0 || all.String() != `Match(Index("all"))` {
		t.Errorf("term-less index: %v %v", all, err)
	}
	if s := (Target{}).String(); s != "Target(invalid)" {
		t.Errorf("zero Target: %s", s)
	}
}

func TestEventAfterAndHasCursor(t *testing.T) {
	id := txlog.ID{1}
	at := func(txn txlog.Txn, op, seq uint32) txlog.Cursor {
		return txlog.Cursor{Log: id, Pos: txlog.Pos{Txn: txn, Op: op}, Seq: seq}
	}
	e := &Event{Cursor: at(5, 1, 1)}
	if !e.HasCursor() || (&Event{}).HasCursor() {
		t.Error("HasCursor")
	}
	for _, tt := range []struct {
		c    txlog.Cursor
		want bool
	}{
		{at(4, 9, 9), true},
		{at(5, 0, 9), true},
		{at(5, 1, 0), true},
		{at(5, 1, 1), false},
		{at(5, 1, 2), false},
		{at(5, 2, 0), false},
		{at(6, 0, 0), false},
		{txlog.Cursor{Log: id, Pos: txlog.AfterTxn(4)}, true},
		{txlog.Cursor{Log: id, Pos: txlog.AfterTxn(5)}, false},
	} {
		if got := e.After(tt.c); got != tt.want {
			t.Errorf("event at %v: After(%v) = %v, want %v", e.Cursor.Pos, tt.c.Pos, got, tt.want)
		}
	}
}
