package checkpoint

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
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
			return Encode(w, id, txn, slices.Values(docs), func() bool { return false })
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
	if err != nil || h != (Header{Log: id, Txn: 10}) {
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
		return Encode(w, txlog.NewID(), 1, many, func() bool { return true })
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
