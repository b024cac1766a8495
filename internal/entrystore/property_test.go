package entrystore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/txlog"
)

// The property: after every write of a random sequence, the membership
// kept by applying diffs to a Store equals every set recomputed from
// scratch with the reference model (encoding/json), and each diff is
// exactly the difference of the reference entries before and after.

// Random JSON: a document is built as a tree, then rendered with random
// spellings (1 or 1.0 or 1e0, "a" or "\u0061"), member order, white space
// and overridden duplicate keys, so that equal documents often differ in
// text.

type (
	jNum []string // spellings of one number
	jStr []string // spellings of one string
	jArr []any
	jObj []jMember
)

type jMember struct {
	key string
	val any
}

var (
	numClasses = []jNum{
		{"1", "1.0", "1e0", "10E-1", "0.1e1"},
		{"0", "-0", "0.0", "0e5"},
		{"2", "2.00", "20e-1"},
		{"-1.5", "-15e-1", "-0.15E1"},
		{"12345678901234567891"},
		{"12345678901234567892"},
		{"1e400", "10e399"},
		{"0.001", "1e-3"},
	}
	strClasses = []jStr{
		{`"a"`, `"\u0061"`},
		{`"1"`},
		{`""`},
		{`"é"`, `"\u00e9"`},
		{`"b\u0000"`},
		{`"fire"`, `"fir\u0065"`},
	}
	topKeys    = []string{"a", "b", "c", "d"}
	nestedKeys = []string{"x", "y"}
	pathPool   = []string{"a", "b", "c", "d", "e", "a.x", "a.y", "b.x", "b.y", "a.x.y"}
)

func randScalar(r *rand.Rand) any {
	switch n := r.IntN(10); {
	case n == 0:
		return nil
	case n == 1:
		return r.IntN(2) == 0
	case n < 6:
		return numClasses[r.IntN(len(numClasses))]
	default:
		return strClasses[r.IntN(len(strClasses))]
	}
}

func randValue(r *rand.Rand, depth int) any {
	if depth <= 0 {
		return randScalar(r)
	}
	switch r.IntN(10) {
	case 0, 1:
		a := make(jArr, r.IntN(4))
		for i := range a {
			a[i] = randValue(r, depth-1)
		}
		return a
	case 2:
		return randObject(r, nestedKeys, depth-1)
	}
	return randScalar(r)
}

func randObject(r *rand.Rand, keys []string, depth int) jObj {
	var o jObj
	for _, k := range keys {
		if r.IntN(10) < 6 { // else the field is missing
			o = append(o, jMember{k, randValue(r, depth)})
		}
	}
	return o
}

func randDoc(r *rand.Rand) jObj {
	o := randObject(r, topKeys, 2)
	for i := range o {
		if r.IntN(3) == 0 {
			o[i].val = randObject(r, nestedKeys, 1) // so that "a.x" often exists
		}
	}
	return o
}

// render writes v as JSON text with random spellings and layout.
func render(r *rand.Rand, b *strings.Builder, v any) {
	sp := func() {
		if r.IntN(6) == 0 {
			b.WriteByte(" \n\t"[r.IntN(3)])
		}
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		fmt.Fprint(b, x)
	case jNum:
		b.WriteString(x[r.IntN(len(x))])
	case jStr:
		b.WriteString(x[r.IntN(len(x))])
	case jArr:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			sp()
			render(r, b, e)
		}
		b.WriteByte(']')
	case jObj:
		b.WriteByte('{')
		first := true
		for _, i := range r.Perm(len(x)) {
			if !first {
				b.WriteByte(',')
			}
			first = false
			sp()
			if r.IntN(8) == 0 { // a duplicate key, overridden by the real one
				fmt.Fprintf(b, "%q:", x[i].key)
				render(r, b, randValue(r, 1))
				b.WriteByte(',')
			}
			fmt.Fprintf(b, "%q:", x[i].key)
			sp()
			render(r, b, x[i].val)
		}
		b.WriteByte('}')
	}
}

func renderDoc(r *rand.Rand, o jObj) []byte {
	var b strings.Builder
	render(r, &b, o)
	return []byte(b.String())
}

func randSchema(r *rand.Rand) index.Schema {
	s := index.Schema{Collections: []string{"c1", "c2"}}
	paths := func() []string {
		p := make([]string, r.IntN(3))
		for i := range p {
			p[i] = pathPool[r.IntN(len(pathPool))]
		}
		return p
	}
	for i := range 2 + r.IntN(5) {
		s.Indexes = append(s.Indexes, index.Definition{
			Name:       fmt.Sprint("idx", i),
			Collection: s.Collections[r.IntN(2)],
			Terms:      paths(),
			Values:     paths(),
		})
	}
	return s
}

// liveDoc is a document as the test keeps it.
type liveDoc struct {
	tree    jObj
	text    []byte
	decoded any // by the reference model
}

// bruteSets recomputes every non-empty set from scratch: each set's
// members as Entries in set order (values, then ref ID).
func bruteSets(t *testing.T, c *Catalog, s index.Schema, docs map[txlog.Ref]*liveDoc) map[SetKey][]Entry {
	t.Helper()
	sets := map[SetKey][]Entry{}
	for ref := range docs {
		k, _ := c.CollectionSet(ref.Collection)
		sets[k] = append(sets[k], Entry{Ref: ref})
	}
	for _, def := range s.Indexes {
		for ref, doc := range docs {
			if ref.Collection != def.Collection {
				continue
			}
			es, err := refEntries(def, doc.decoded)
			if err != nil {
				t.Fatalf("reference entries of %s in %s: %v", ref, def.Name, err)
			}
			for _, e := range es {
				k, err := c.MatchTerms(def.Name, canonical.Tuple(e.terms))
				if err != nil {
					t.Fatal(err)
				}
				sets[k] = append(sets[k], Entry{Terms: canonical.Tuple(e.terms), Values: canonical.Tuple(e.values), Ref: ref})
			}
		}
	}
	for _, members := range sets {
		slices.SortFunc(members, func(a, b Entry) int {
			if c := a.Values.Compare(b.Values); c != 0 {
				return c
			}
			return strings.Compare(a.Ref.ID, b.Ref.ID)
		})
	}
	return sets
}

// checkSets compares a Store or Snapshot with the recomputed sets.
func checkSets(t *testing.T, r *rand.Rand, p pager, total int, want map[SetKey][]Entry) {
	t.Helper()
	n := 0
	for _, k := range slices.SortedFunc(maps.Keys(want), func(a, b SetKey) int { return strings.Compare(a.key, b.key) }) {
		got, err := listSet(p, k, 1+r.IntN(7))
		if err != nil {
			t.Fatalf("%v: %v", k, err)
		}
		if !slices.Equal(got, want[k]) {
			t.Fatalf("%v:\n got %v\nwant %v", k, got, want[k])
		}
		n += len(got)
	}
	if n != total {
		t.Fatalf("the store holds %d entries, the recomputed sets %d", total, n)
	}
}

// expectedChanges computes a write's changes with the reference model, in
// the documented order.
func expectedChanges(t *testing.T, c *Catalog, s index.Schema, ref txlog.Ref, before, after *liveDoc) []string {
	t.Helper()
	var out []string
	coll, _ := c.CollectionSet(ref.Collection)
	switch {
	case before == nil:
		out = append(out, "add "+coll.String())
	case after == nil:
		out = append(out, "remove "+coll.String())
	}
	for _, def := range s.Indexes {
		if def.Collection != ref.Collection {
			continue
		}
		var be, ae []refEntry
		if before != nil {
			be, _ = refEntries(def, before.decoded)
		}
		if after != nil {
			ae, _ = refEntries(def, after.decoded)
		}
		show := func(action string, e refEntry) string {
			k, _ := c.MatchTerms(def.Name, canonical.Tuple(e.terms))
			return action + " " + k.String() + " " + canonical.Tuple(e.values).String()
		}
		for _, e := range be {
			if !slices.Contains(ae, e) {
				out = append(out, show("remove", e))
			}
		}
		for _, e := range ae {
			if !slices.Contains(be, e) {
				out = append(out, show("add", e))
			}
		}
	}
	return out
}

func gotChanges(d *Diff) []string {
	var out []string
	for _, c := range d.Changes() {
		s := c.Action.String() + " " + c.Set.String()
		if c.Set.Kind() == SetIndex {
			s += " " + c.Entry.Values.String()
		}
		out = append(out, s)
	}
	return out
}

func TestMembershipProperty(t *testing.T) {
	const rounds, writes = 25, 120
	r := rand.New(rand.NewPCG(2024, 3))
	var d Diff // one Diff across catalogs and writes, as a broker goroutine would
	for round := range rounds {
		schema := randSchema(r)
		c := mustCatalog(t, schema)
		store := NewStore(c)
		docs := map[txlog.Ref]*liveDoc{}
		type snap struct {
			s     *Snapshot
			want  map[SetKey][]Entry
			total int
		}
		var snaps []snap
		for w := range writes {
			ref := txlog.Ref{Collection: []string{"c1", "c2"}[r.IntN(2)], ID: fmt.Sprint(r.IntN(12))}
			before := docs[ref]
			var after *liveDoc
			if before == nil || r.IntN(4) != 0 { // else delete
				var tree jObj
				switch {
				case before == nil || r.IntN(3) == 0:
					tree = randDoc(r)
				case r.IntN(2) == 0:
					tree = before.tree // the same document, spelled differently
				default:
					tree = slices.Clone(before.tree) // one field changed, added or dropped
					if len(tree) > 0 && r.IntN(3) == 0 {
						i := r.IntN(len(tree))
						tree = slices.Delete(tree, i, i+1)
					} else if len(tree) > 0 {
						tree[r.IntN(len(tree))].val = randValue(r, 2)
					} else {
						tree = append(tree, jMember{topKeys[r.IntN(len(topKeys))], randValue(r, 2)})
					}
				}
				after = &liveDoc{tree: tree, text: renderDoc(r, tree)}
				var err error
				if after.decoded, err = refDecode(after.text); err != nil {
					t.Fatalf("generated invalid JSON %s: %v", after.text, err)
				}
			}
			var bt, at []byte
			if before != nil {
				bt = before.text
			}
			if after != nil {
				at = after.text
			}
			where := fmt.Sprintf("round %d write %d %s\nbefore %s\nafter  %s", round, w, ref, bt, at)
			if err := c.Diff(&d, ref, bt, at); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if got, want := gotChanges(&d), expectedChanges(t, c, schema, ref, before, after); !slices.Equal(got, want) {
				t.Fatalf("%s\nchanges:\n%s\nwant:\n%s", where, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if err := store.Apply(txlog.Txn(w+1), &d); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if after == nil {
				delete(docs, ref)
			} else {
				docs[ref] = after
			}
			want := bruteSets(t, c, schema, docs)
			checkSets(t, r, store, store.Len(), want)
			if r.IntN(30) == 0 {
				snaps = append(snaps, snap{store.Snapshot(), want, store.Len()})
			}
		}
		for _, s := range snaps { // unchanged by the writes since
			checkSets(t, r, s.s, s.total, s.want)
		}
	}
}
