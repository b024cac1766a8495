package entrystore

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/txlog"
)

// A SetDiff gives, write after write, exactly the changes of its set that
// a Diff gives, and the document's first entry in the set after the
// write. Each SetDiff sees every write, as a replaying subscriber does, so
// that it reuses the scan of the last after image whenever the next before
// image is the same bytes, and the last before image's when a write puts
// the document back as it was (writes often follow on the same document).
func TestSetDiffMatchesDiff(t *testing.T) {
	const rounds, writes = 25, 150
	r := rand.New(rand.NewPCG(7, 11))
	var d Diff
	for round := range rounds {
		schema := randSchema(r)
		c := mustCatalog(t, schema)
		docs := map[txlog.Ref][]byte{}
		prev := map[txlog.Ref][]byte{} // each document's image before its last write
		var ref txlog.Ref
		sds := map[SetKey]*SetDiff{}
		for _, coll := range schema.Collections {
			k, _ := c.CollectionSet(coll)
			sds[k] = must(c.NewSetDiff(k))
		}
		for w := range writes {
			if w == 0 || r.IntN(2) == 0 {
				ref = txlog.Ref{Collection: []string{"c1", "c2"}[r.IntN(2)], ID: fmt.Sprint(r.IntN(4))}
			}
			before := docs[ref]
			var after []byte
			if before == nil || r.IntN(5) != 0 { // else delete
				switch {
				case before != nil && r.IntN(4) == 0:
					after = before // written again, unchanged
				case prev[ref] != nil && r.IntN(3) == 0:
					after = bytes.Clone(prev[ref]) // put back as it was
				default:
					after = renderDoc(r, randDoc(r))
				}
			}
			where := fmt.Sprintf("round %d write %d %s\nbefore %s\nafter  %s", round, w, ref, before, after)
			if err := c.Diff(&d, ref, before, after); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			for _, ch := range d.Changes() {
				if sds[ch.Set] == nil {
					// A set first seen now: its SetDiff starts with no
					// scan to reuse.
					sds[ch.Set] = must(c.NewSetDiff(ch.Set))
				}
			}
			for _, k := range slices.SortedFunc(maps.Keys(sds), func(a, b SetKey) int { return strings.Compare(a.key, b.key) }) {
				sd := sds[k]
				if err := sd.Diff(ref, before, after); err != nil {
					t.Fatalf("%s: %v: %v", where, k, err)
				}
				var want []Change
				for _, ch := range d.Changes() {
					if ch.Set == k {
						ch.ord, ch.skey = 0, ""
						want = append(want, ch)
					}
				}
				if got := sd.Changes(); !slices.Equal(got, want) {
					t.Fatalf("%s\n%v: changes\n%v\nwant\n%v", where, k, got, want)
				}
				got, ok := sd.Member()
				want1, wok := memberOf(t, c, k, ref, after)
				if ok != wok || got != want1 {
					t.Fatalf("%s\n%v: member %v %v, want %v %v", where, k, got, ok, want1, wok)
				}
			}
			prev[ref] = before
			if after == nil {
				delete(docs, ref)
			} else {
				docs[ref] = after
			}
		}
	}
}

// memberOf is the document's first entry in the set k, from Entries.
func memberOf(t *testing.T, c *Catalog, k SetKey, ref txlog.Ref, data []byte) (Entry, bool) {
	if data == nil {
		return Entry{}, false
	}
	if k.Kind() == SetCollection {
		if ref.Collection != k.Name() {
			return Entry{}, false
		}
		return Entry{Ref: ref}, true
	}
	entries, err := c.Entries(k.Name(), ref, data)
	if errors.Is(err, index.ErrUnknownIndex) {
		return Entry{}, false // another collection's document
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if mk, _ := c.MatchTerms(k.Name(), e.Terms); mk == k {
			return e, true
		}
	}
	return Entry{}, false
}

func TestNewSetDiffErrors(t *testing.T) {
	c := mustCatalog(t, index.Schema{Collections: []string{"spells"},
		Indexes: []index.Definition{{Name: "by_element", Collection: "spells", Terms: []string{"element"}}}})
	other := mustCatalog(t, index.Schema{Collections: []string{"users"},
		Indexes: []index.Definition{{Name: "by_team", Collection: "users", Terms: []string{"team"}}}})
	for _, k := range []SetKey{{}, must(other.CollectionSet("users")), must(other.MatchSet("by_team", must(index.ValueOf("red"))))} {
		if _, err := c.NewSetDiff(k); err == nil {
			t.Errorf("%v: no error", k)
		}
	}
}

// A SetDiff allocates nothing per write once its buffers have grown, also
// for changes that carry values.
func TestSetDiffAllocs(t *testing.T) {
	c := benchCatalog(t, 4)
	k := must(c.MatchSet("idx0", must(index.ValueOf("fire"))))
	sd := must(c.NewSetDiff(k))
	ref := txlog.Ref{Collection: "spells", ID: "42"}
	docs := [2][]byte{benchDoc(3, 10), benchDoc(4, 12)}
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		if err := sd.Diff(ref, docs[i&1], docs[1-i&1]); err != nil || len(sd.Changes()) != 2 {
			t.Fatalf("%v, %v", sd.Changes(), err)
		}
		i++
	})
	// The values' chunk is renewed every few dozen writes.
	if n > 0.1 {
		t.Errorf("%v allocations per write", n)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
