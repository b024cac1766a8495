package checkpoint

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tidings/tidings/txlog"
)

func TestWriteListRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "checkpoints")
	if txns, err := List(dir); err != nil || txns != nil {
		t.Fatalf("List of a missing directory = %v, %v", txns, err)
	}
	id := txlog.NewID()
	docs := []Doc{
		{Ref: txlog.Ref{Collection: "a", ID: "2"}, TS: 3, Data: []byte(`{"x":1}`)},
		{Ref: txlog.Ref{Collection: "b", ID: "1"}, TS: 4, Data: []byte(`{}`)},
	}
	for _, txn := range []txlog.Txn{4, 10} {
		n, err := WriteFile(dir, txn, func(w io.Writer) error {
			return Encode(w, id, txn, slices.Values(docs), nil, func() bool { return false })
		})
		if err != nil || n == 0 {
			t.Fatalf("WriteFile at %d: %d bytes, %v", txn, n, err)
		}
	}
	os.WriteFile(filepath.Join(dir, "other"+Suffix), nil, 0o644)
	if txns, err := List(dir); err != nil || !slices.Equal(txns, []txlog.Txn{10, 4}) {
		t.Fatalf("List = %v, %v; want [10 4]", txns, err)
	}
	var got []Doc
	h, err := Read(filepath.Join(dir, Name(10)), func(d Doc) { got = append(got, d) })
	if err != nil || h != (Header{Log: id, Txn: 10, Version: 2}) {
		t.Fatalf("Read = %+v, %v", h, err)
	}
	if len(got) != len(docs) {
		t.Fatalf("read %d documents, want %d", len(got), len(docs))
	}
	for i := range docs {
		if got[i].Ref != docs[i].Ref || got[i].TS != docs[i].TS || !bytes.Equal(got[i].Data, docs[i].Data) {
			t.Errorf("document %d = %+v, want %+v", i, got[i], docs[i])
		}
	}

	// A flipped bit anywhere is damage.
	path := filepath.Join(dir, Name(4))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	os.WriteFile(path, b, 0o644)
	if _, err := Read(path, func(Doc) {}); !errors.Is(err, ErrDamaged) {
		t.Errorf("Read of a damaged file = %v, want ErrDamaged", err)
	}
}

func TestWriteFileStopped(t *testing.T) {
	dir := t.TempDir()
	many := func(yield func(Doc) bool) {
		for i := range 10000 {
			if !yield(Doc{Ref: txlog.Ref{Collection: "c", ID: Name(txlog.Txn(i))}, TS: 1, Data: []byte(`{}`)}) {
				return
			}
		}
	}
	if _, err := WriteFile(dir, 1, func(w io.Writer) error {
		return Encode(w, txlog.NewID(), 1, many, nil, func() bool { return true })
	}); !errors.Is(err, ErrStopped) {
		t.Fatalf("WriteFile stopped = %v, want ErrStopped", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a stopped write left %v", entries)
	}
}

func TestParseName(t *testing.T) {
	if txn, ok := ParseName(Name(12345)); !ok || txn != 12345 {
		t.Errorf("ParseName(Name(12345)) = %d, %v", txn, ok)
	}
	for _, bad := range []string{"checkpoint-1.ckpt", Name(1) + TempSuffix, Name(1) + ".ahead", "x" + Name(1)} {
		if _, ok := ParseName(bad); ok {
			t.Errorf("ParseName(%q) accepted", bad)
		}
	}
}

// TestIndexEntries writes and reads back a checkpoint with index entries,
// and reads it skipping them.
func TestIndexEntries(t *testing.T) {
	id := txlog.NewID()
	data := encodeCheckpoint(id, 9, fuzzDocs, 0xfeed, fuzzSets)
	c, err := decodeCheckpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	if c.h != (Header{Log: id, Txn: 9, Version: 2}) || c.schema != 0xfeed || len(c.docs) != len(fuzzDocs) || len(c.sets) != len(fuzzSets) {
		t.Fatalf("read %+v, schema %x, %d documents, %d sets", c.h, c.schema, len(c.docs), len(c.sets))
	}
	for i := range fuzzSets {
		if !slices.Equal(c.sets[i], fuzzSets[i]) {
			t.Errorf("set %d = %+v, want %+v", i, c.sets[i], fuzzSets[i])
		}
	}
	// Decode skips the entries, and still checks them.
	var n int
	if h, err := Decode(bytes.NewReader(data), int64(len(data)), func(Doc) { n++ }); err != nil || h.Txn != 9 || n != len(fuzzDocs) {
		t.Fatalf("Decode = %+v, %v, %d documents", h, err, n)
	}
	bad := bytes.Clone(data)
	bad[len(bad)-30] ^= 1
	if _, err := Decode(bytes.NewReader(bad), int64(len(bad)), func(Doc) {}); !errors.Is(err, ErrDamaged) {
		t.Errorf("Decode of damaged entries = %v, want ErrDamaged", err)
	}

	// The writer refuses entries out of order.
	var buf bytes.Buffer
	cw := NewWriter(&buf, id, 1)
	cw.Index(1, 1)
	cw.StartSet(2)
	cw.AddEntry("b", 0, 0)
	cw.AddEntry("a", 0, 0)
	if err := cw.Finish(); err == nil {
		t.Error("Finish after entries out of order: no error")
	}
}

// TestReadsVersion1 reads a checkpoint that the first version of the
// format wrote (testdata/v1.ckpt): its documents, and no entries. A
// checkpoint of an unknown version is refused, saying so.
func TestReadsVersion1(t *testing.T) {
	data, err := os.ReadFile("testdata/v1.ckpt")
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeCheckpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	if c.h.Version != 1 || c.h.Txn != 9 || c.schema != 0 || len(c.sets) != 0 || len(c.docs) != len(fuzzDocs) {
		t.Fatalf("read %+v, schema %x, %d sets, %d documents", c.h, c.schema, len(c.sets), len(c.docs))
	}
	for i, d := range fuzzDocs {
		if c.docs[i].Ref != d.Ref || c.docs[i].TS != d.TS || !bytes.Equal(c.docs[i].Data, d.Data) {
			t.Errorf("document %d = %+v, want %+v", i, c.docs[i], d)
		}
	}
	v3 := bytes.Clone(data)
	copy(v3, "TDCKPT03")
	if _, err := Decode(bytes.NewReader(v3), int64(len(v3)), func(Doc) {}); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "format") {
		t.Errorf("a checkpoint of version 3: %v", err)
	}
}
