package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/txlog"
)

// Tests of the index entries that checkpoints save: a restart loads them
// when the index definitions are those that wrote them, brings them up to
// the head with the log after the checkpoint, and rebuilds them from the
// documents otherwise (other definitions, a checkpoint of the first
// format). Each restart's index store is compared with one built from the
// restored documents.

// entriesSchema has an index whose entries fan out over an array, one
// with values, and one with neither terms nor values.
var entriesSchema = index.Schema{
	Collections: []string{"spells", "wands"},
	Indexes: []index.Definition{
		{Name: "spells_by_element", Collection: "spells", Terms: []string{"element"}, Values: []string{"level", "name"}},
		{Name: "spells_by_tag", Collection: "spells", Terms: []string{"tags"}},
		{Name: "all_wands", Collection: "wands", Values: []string{"wood"}},
	},
}

// logLines records the messages a broker logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logLines) WithGroup(string) slog.Handler            { return l }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

// has reports whether a line starts with prefix.
func (l *logLines) has(prefix string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.lines, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// contains reports whether a line contains s.
func (l *logLines) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.lines, func(line string) bool { return strings.Contains(line, s) })
}

// openEntries opens the file log in dir and a broker on it with schema,
// recording what it logs.
func openEntries(t *testing.T, dir string, schema index.Schema, copt CheckpointOptions) (*Broker, *logLines) {
	t.Helper()
	l, err := txlog.OpenFile(dir, txlog.FileOptions{Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	lines := &logLines{}
	b, err := New(Options{Log: l, Schema: schema, Checkpoint: copt, Logger: slog.New(lines)})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	return b, lines
}

// writeSpells commits n random writes over ids spells and wands: creates,
// replaces that move documents between sets, and deletes.
func writeSpells(t *testing.T, b *Broker, r *rand.Rand, n, ids int) {
	t.Helper()
	elements := []string{"fire", "water", "air", "earth"}
	for i := 0; i < n; i += 10 {
		mustCommit(t, b, func(tx *Tx) error {
			for range 10 {
				id := fmt.Sprintf("%04d", r.IntN(ids))
				ref, data := spell(id), fmt.Appendf(nil, `{"element":%q,"level":%d,"name":"s%s","tags":[%q,%q]}`,
					elements[r.IntN(4)], r.IntN(9), id, elements[r.IntN(4)], fmt.Sprint("t", r.IntN(5)))
				if r.IntN(4) == 0 {
					ref, data = txlog.Ref{Collection: "wands", ID: id}, fmt.Appendf(nil, `{"wood":"w%d"}`, r.IntN(20))
				}
				_, exists := tx.Get(ref)
				switch {
				case !exists:
					if err := tx.Create(ref, data); err != nil {
						return err
					}
				case r.IntN(5) == 0:
					if err := tx.Delete(ref); err != nil {
						return err
					}
				default:
					if err := tx.Replace(ref, data); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
}

// checkEntries fails t unless b's index store holds exactly the entries
// of its documents, as a store rebuilt from them does.
func checkEntries(t *testing.T, b *Broker) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	restored := b.store
	if err := b.buildIndexes(); err != nil {
		t.Fatal(err)
	}
	rebuilt := b.store
	b.store = restored
	if restored.Len() != rebuilt.Len() || restored.Len() == 0 {
		t.Fatalf("the store holds %d entries, %d rebuilt from the documents", restored.Len(), rebuilt.Len())
	}
	cat := b.cat.Load()
	got, want := restored.Snapshot(), rebuilt.Snapshot()
	for i, def := range cat.Indexes() {
		_, g := got.SavedIndex(i)
		_, w := want.SavedIndex(i)
		if gs, ws := slices.Collect(g), slices.Collect(w); !slices.Equal(gs, ws) {
			t.Fatalf("index %s: %d entries, %d rebuilt from the documents", def.Name, len(gs), len(ws))
		}
	}
	for _, coll := range cat.Collections() {
		set, _ := cat.CollectionSet(coll)
		g, _, err := got.Page(nil, set, entrystore.Position{}, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		w, _, _ := want.Page(nil, set, entrystore.Position{}, 1<<20)
		if !slices.Equal(g, w) {
			t.Fatalf("collection %s: %d members, %d rebuilt from the documents", coll, len(g), len(w))
		}
	}
}

// TestCheckpointEntries: a restart under the same schema loads the
// checkpoint's entries, which are those of its documents; and they stay
// right through writes after it.
func TestCheckpointEntries(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	b, _ := openEntries(t, dir, entriesSchema, CheckpointOptions{})
	writeSpells(t, b, r, 2000, 500)
	checkEntries(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, lines := openEntries(t, dir, entriesSchema, CheckpointOptions{})
	if !lines.has("broker: state loaded from a checkpoint checkpoint=") || !lines.has("broker: state rebuilt") ||
		lines.has("broker: state loaded from a checkpoint; its index entries are to be rebuilt") {
		t.Fatalf("the restart did not load the checkpoint's entries: %q", lines.lines)
	}
	checkEntries(t, b)
	writeSpells(t, b, r, 500, 500)
	checkEntries(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointEntriesTail: a restart from a checkpoint behind the head
// brings its entries up to the head by diffing the documents the log
// changed after it; or, when the log changes too many, leaves them and
// rebuilds them from the documents.
func TestCheckpointEntriesTail(t *testing.T) {
	for _, tc := range []struct {
		name        string
		writes, ids int
		diffs       bool
	}{
		{"diffs", 300, 600, true},
		{"rebuilt", 3000, 4000, false}, // over a quarter of the documents and 1000
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			older := filepath.Join(t.TempDir(), "older")
			r := rand.New(rand.NewPCG(3, 4))
			b, _ := openEntries(t, dir, entriesSchema, CheckpointOptions{Dir: older})
			writeSpells(t, b, r, 1000, 600)
			if _, err := b.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			closeAsKilled(t, b) // no checkpoint on Close: only the one behind
			// The log after it: more of the same, and some over new ids.
			b, _ = openEntries(t, dir, entriesSchema, CheckpointOptions{Dir: filepath.Join(t.TempDir(), "none")})
			writeSpells(t, b, r, tc.writes, tc.ids)
			head := b.Head()
			closeAsKilled(t, b)

			b, lines := openEntries(t, dir, entriesSchema, CheckpointOptions{Dir: older})
			defer b.Close()
			if b.Head() != head {
				t.Fatalf("head %d, want %d", b.Head(), head)
			}
			loaded, want := "broker: state loaded from a checkpoint checkpoint=", "entries from=the checkpoint, "
			if !tc.diffs {
				loaded, want = "broker: state loaded from a checkpoint; its index entries are to be rebuilt", "entries from=the documents "
			}
			if !lines.has(loaded) || !lines.contains(want) {
				t.Fatalf("the restart did not log %q and %q: %q", loaded, want, lines.lines)
			}
			checkEntries(t, b)
		})
	}
}

// TestCheckpointEntriesOtherSchema: under other index definitions, a
// restart rebuilds the entries from the checkpoint's documents; a
// collection added keeps them.
func TestCheckpointEntriesOtherSchema(t *testing.T) {
	dir := t.TempDir()
	b, _ := openEntries(t, dir, entriesSchema, CheckpointOptions{})
	writeSpells(t, b, rand.New(rand.NewPCG(5, 6)), 1000, 300)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	changed := cloneSchema(entriesSchema)
	changed.Indexes[1] = index.Definition{Name: "spells_by_tag", Collection: "spells", Terms: []string{"tags"}, Values: []string{"level"}}
	changed.Indexes = append(changed.Indexes, index.Definition{Name: "spells_by_level", Collection: "spells", Terms: []string{"level"}})
	more := cloneSchema(entriesSchema)
	more.Collections = append(more.Collections, "potions")
	for _, tc := range []struct {
		name    string
		schema  index.Schema
		rebuilt bool
	}{
		{"indexes changed", changed, true},
		{"collection added", more, false},
		{"same again", entriesSchema, false},
	} {
		b, lines := openEntries(t, dir, tc.schema, CheckpointOptions{})
		if got := lines.has("broker: state loaded from a checkpoint; its index entries are to be rebuilt"); got != tc.rebuilt {
			t.Errorf("%s: entries rebuilt: %t, want %t: %q", tc.name, got, tc.rebuilt, lines.lines)
		}
		checkEntries(t, b)
		closeAsKilled(t, b)
	}
}

// TestCheckpointOldFormat: a checkpoint of the first format, found on
// disk, is read (its documents; the entries are rebuilt), and one of an
// unknown format is skipped for the log.
func TestCheckpointOldFormat(t *testing.T) {
	dir := t.TempDir()
	b, _ := openEntries(t, dir, entriesSchema, CheckpointOptions{Keep: 1})
	writeSpells(t, b, rand.New(rand.NewPCG(7, 8)), 1000, 300)
	want := dumpDocs(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	txns, err := checkpoint.List(filepath.Join(dir, "checkpoints"))
	if err != nil || len(txns) != 1 {
		t.Fatalf("checkpoints %v, %v", txns, err)
	}
	path := filepath.Join(dir, "checkpoints", checkpoint.Name(txns[0]))
	var docs []checkpoint.Doc
	h, err := checkpoint.Read(path, func(d checkpoint.Doc) { docs = append(docs, d) })
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, encodeV1(h, docs), 0o644); err != nil {
		t.Fatal(err)
	}

	b, lines := openEntries(t, dir, entriesSchema, CheckpointOptions{})
	if !lines.has("broker: state loaded from a checkpoint; its index entries are to be rebuilt") {
		t.Fatalf("the first format's checkpoint was not loaded: %q", lines.lines)
	}
	if got := dumpDocs(t, b); got != want {
		t.Fatalf("restored from the first format:\n%s\nwant\n%s", got, want)
	}
	checkEntries(t, b)
	closeAsKilled(t, b)

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	copy(data, "TDCKPT99")
	os.WriteFile(path, data, 0o644)
	b, lines = openEntries(t, dir, entriesSchema, CheckpointOptions{})
	defer b.Close()
	if !lines.has("broker: skipping a checkpoint") || lines.has("broker: state loaded from a checkpoint") {
		t.Fatalf("a checkpoint of an unknown format was not skipped: %q", lines.lines)
	}
	if got := dumpDocs(t, b); got != want {
		t.Fatalf("replayed past an unknown format:\n%s\nwant\n%s", got, want)
	}
	checkEntries(t, b)
}

// encodeV1 writes a checkpoint in the first format: the documents alone.
func encodeV1(h checkpoint.Header, docs []checkpoint.Doc) []byte {
	b := append([]byte("TDCKPT01"), h.Log[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Txn))
	for _, d := range docs {
		var body []byte
		body = binary.AppendUvarint(body, uint64(len(d.Ref.Collection)))
		body = append(body, d.Ref.Collection...)
		body = binary.AppendUvarint(body, uint64(len(d.Ref.ID)))
		body = append(body, d.Ref.ID...)
		body = binary.AppendUvarint(body, uint64(d.TS))
		body = append(body, d.Data...)
		b = binary.AppendUvarint(b, uint64(len(body)))
		b = append(b, body...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(len(docs)))
	return binary.BigEndian.AppendUint64(b, xxhash.Sum64(b))
}

// dumpDocs prints the head and every document: two brokers with the same
// dump have the same documents.
func dumpDocs(t *testing.T, b *Broker) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	writeDocs(&sb, b)
	return sb.String()
}
