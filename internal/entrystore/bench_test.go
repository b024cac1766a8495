package entrystore

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/txlog"
)

// benchFields are the fields of the benchmark documents; index i reads
// term benchFields[i%8] and value benchFields[(i+3)%8].
var benchFields = []string{"element", "school", "stats.level", "stats.mana", "tags", "owner.team", "name", "rarity"}

func benchCatalog(b testing.TB, indexes int) *Catalog {
	s := index.Schema{Collections: []string{"spells"}}
	for i := range indexes {
		s.Indexes = append(s.Indexes, index.Definition{
			Name:       fmt.Sprint("idx", i),
			Collection: "spells",
			Terms:      []string{benchFields[i%8]},
			Values:     []string{benchFields[(i+3)%8], benchFields[(i+5)%8]},
		})
	}
	return mustCatalog(b, s)
}

func benchDoc(level, mana int) []byte {
	return fmt.Appendf(nil, `{"name":"Fireball","element":"fire","school":"evocation","rarity":"common",`+
		`"stats":{"level":%d,"mana":%d,"range":30},"tags":["aoe","damage"],"owner":{"id":"u1","team":"red"},`+
		`"description":"A bright streak flashes from your pointing finger to a point you choose."}`, level, mana)
}

// BenchmarkDiff measures the membership diff of one write: an update that
// changes two indexed fields (stats.level, stats.mana), and a create.
func BenchmarkDiff(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		c := benchCatalog(b, n)
		ref := txlog.Ref{Collection: "spells", ID: "42"}
		docs := [2][]byte{benchDoc(3, 10), benchDoc(4, 12)}
		b.Run(fmt.Sprintf("indexes=%d/update", n), func(b *testing.B) {
			var d Diff
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := c.Diff(&d, ref, docs[i&1], docs[1-i&1]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("indexes=%d/create", n), func(b *testing.B) {
			var d Diff
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Diff(&d, ref, nil, docs[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fillStore applies creates of n documents, a third of them "fire", to a
// store with one index by element (values: level).
func fillStore(b *testing.B, n int) (*Catalog, *Store) {
	c := mustCatalog(b, index.Schema{
		Collections: []string{"spells"},
		Indexes:     []index.Definition{{Name: "by_element", Collection: "spells", Terms: []string{"element"}, Values: []string{"level"}}},
	})
	s := NewStore(c)
	var d Diff
	elements := []string{"fire", "water", "air"}
	for i := range n {
		doc := fmt.Appendf(nil, `{"element":%q,"level":%d}`, elements[i%3], i%100)
		if err := c.Diff(&d, txlog.Ref{Collection: "spells", ID: fmt.Sprintf("spell-%07d", i)}, nil, doc); err != nil {
			b.Fatal(err)
		}
		if err := s.Apply(txlog.Txn(i+1), &d); err != nil {
			b.Fatal(err)
		}
	}
	return c, s
}

// BenchmarkSetListing pages through a set of 100,000 members (in a store
// of 600,000 entries), 100 at a time, from a Snapshot.
func BenchmarkSetListing(b *testing.B) {
	c, s := fillStore(b, 300_000)
	fire, _ := c.MatchSet("by_element", mustParse(b, `"fire"`))
	snap := s.Snapshot()
	page := make([]Entry, 0, 100)
	listed := 0
	b.ReportAllocs()
	for b.Loop() {
		var after Position
		for {
			var more bool
			var err error
			page, more, err = snap.Page(page[:0], fire, after, 100)
			if err != nil {
				b.Fatal(err)
			}
			listed += len(page)
			if !more {
				break
			}
			after = page[len(page)-1].Position()
		}
	}
	b.ReportMetric(float64(listed)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(listed)/float64(b.N), "entries/op")
}

// BenchmarkStoreMemory reports the heap a Store holds per entry, measured
// with runtime.ReadMemStats before and after filling it with 200,000
// entries (100,000 documents: a collection entry and an index entry each,
// ref IDs of 12 bytes).
func BenchmarkStoreMemory(b *testing.B) {
	var perEntry float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, s := fillStore(b, 100_000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / float64(s.Len())
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perEntry, "B/entry")
}

// BenchmarkSetKey measures building and hashing a Match set key.
func BenchmarkSetKey(b *testing.B) {
	c := benchCatalog(b, 1)
	fire := mustParse(b, `"fire"`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.MatchSet("idx0", fire); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetMapGet looks a set up among 1,000 and 1,000,000 keys: the
// cost should not depend on the number of keys.
func BenchmarkSetMapGet(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			c := benchCatalog(b, 1)
			var m SetMap[int]
			keys := make([]SetKey, n)
			for i := range keys {
				keys[i], _ = c.MatchSet("idx0", mustParse(b, fmt.Sprint(i)))
				m.Put(keys[i], i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := m.Get(keys[i%n]); !ok {
					b.Fatal("missing")
				}
				i += 7919
			}
		})
	}
}

// BenchmarkSetDiff measures SetDiff, the diff of one set that a replaying
// subscriber computes for every write it reads: an update that changes
// the set's index (values=2: two fields) and one that moves the document
// between two sets of a small document, each write's before image the
// last one's after image, as when one document is written again and again.
// Those toggle between two images, so that each write puts back the image
// the last one replaced (a scan reused); small/cycle goes through four
// images instead, which scans each write's after image.
func BenchmarkSetDiff(b *testing.B) {
	for _, n := range []int{1, 16} {
		c := benchCatalog(b, n)
		k, err := c.MatchSet("idx0", must(index.ValueOf("fire")))
		if err != nil {
			b.Fatal(err)
		}
		ref := txlog.Ref{Collection: "spells", ID: "42"}
		docs := [][]byte{benchDoc(3, 10), benchDoc(4, 12)}
		b.Run(fmt.Sprintf("indexes=%d/update", n), func(b *testing.B) {
			benchSetDiff(b, c, k, ref, docs)
		})
	}
	c := mustCatalog(b, index.Schema{Collections: []string{"spells"},
		Indexes: []index.Definition{{Name: "by_element", Collection: "spells", Terms: []string{"element"}}}})
	k, err := c.MatchSet("by_element", must(index.ValueOf("fire")))
	if err != nil {
		b.Fatal(err)
	}
	docs := [][]byte{[]byte(`{"name":"Fire Beak","element":"water","cost":15}`), []byte(`{"name":"Fire Beak","element":"fire","cost":15}`)}
	b.Run("small/move", func(b *testing.B) { benchSetDiff(b, c, k, txlog.Ref{Collection: "spells", ID: "1"}, docs) })
	docs = append(docs, []byte(`{"name":"Fire Beak","element":"water","cost":16}`), []byte(`{"name":"Fire Beak","element":"fire","cost":16}`))
	b.Run("small/cycle", func(b *testing.B) { benchSetDiff(b, c, k, txlog.Ref{Collection: "spells", ID: "1"}, docs) })
}

// benchSetDiff diffs writes that go round docs: each one's before image is
// the last one's after image.
func benchSetDiff(b *testing.B, c *Catalog, k SetKey, ref txlog.Ref, docs [][]byte) {
	d, err := c.NewSetDiff(k)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := d.Diff(ref, docs[i%len(docs)], docs[(i+1)%len(docs)]); err != nil || len(d.Changes()) == 0 {
			b.Fatal(d.Changes(), err)
		}
		i++
	}
}
