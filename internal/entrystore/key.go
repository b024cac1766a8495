package entrystore

import (
	"fmt"
	"iter"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/canonical"
)

// SetKind tells what kind of set a SetKey names.
type SetKind uint8

// The kinds of set.
const (
	// SetCollection is every document of a collection, ordered by ref ID.
	SetCollection SetKind = 'c'
	// SetIndex is an index matched on all its terms, or a term-less index.
	SetIndex SetKind = 'i'
)

// SetKey names one set: a collection, an index with all its terms given,
// or a term-less index. It carries the full key, a canonical byte string
// (kind, name, encoded terms), and its xxhash64, computed once.
//
// Look sets up by Hash (a uint64 map key, a shard number), then confirm
// with == on the SetKeys, which compares the full key: two sets whose
// hashes collide are never taken for one another. SetMap does both.
// SetKeys are comparable values, safe to copy and to share between
// goroutines. The zero SetKey names no set.
type SetKey struct {
	hash uint64
	key  string
}

func newSetKey(key string) SetKey { return SetKey{hash: xxhash.Sum64String(key), key: key} }

// CollectionSet returns the key of the set of every document in the named
// collection. The error wraps index.ErrUnknownCollection.
func (c *Catalog) CollectionSet(collection string) (SetKey, error) {
	if c.byCollection[collection] == nil {
		return SetKey{}, fmt.Errorf("%w: %q", index.ErrUnknownCollection, collection)
	}
	return newSetKey("c" + collection), nil
}

// MatchSet returns the key of the set Match(name, terms...): the
// documents whose entries in the index name have exactly these terms. A
// term-less index takes no terms and is one set. Errors wrap
// index.ErrUnknownIndex or index.ErrTermCount (every term must be given).
//
// Terms match as JSON values: MatchSet("by_level", index.ValueOf(1)) and
// index.ValueOf(1.0) are the same set; index.ValueOf("1") is another. A
// document whose term field is missing or null is in the set matched on
// null.
func (c *Catalog) MatchSet(name string, terms ...index.Value) (SetKey, error) {
	var enc, text []byte
	for _, t := range terms {
		// A Value keeps its canonical encoding to itself; its text is
		// canonical JSON, which encodes back to the same bytes.
		text = t.AppendJSON(text[:0])
		var err error
		if enc, _, err = canonical.Append(enc, text, 0, 0); err != nil {
			return SetKey{}, fmt.Errorf("term %s: %w", text, err)
		}
	}
	return c.MatchTerms(name, canonical.Tuple(enc))
}

// MatchTerms is MatchSet with the terms as one Tuple, as an Entry holds
// them: the set of the index name that an entry with these terms is in.
func (c *Catalog) MatchTerms(name string, terms canonical.Tuple) (SetKey, error) {
	x := c.byIndex[name]
	if x == nil {
		return SetKey{}, fmt.Errorf("%w: %q", index.ErrUnknownIndex, name)
	}
	if n := terms.Len(); n != x.nterms {
		return SetKey{}, fmt.Errorf("%w: index %q has %d terms, %d given", index.ErrTermCount, name, x.nterms, n)
	}
	return newSetKey(x.prefix + string(terms)), nil
}

// Hash returns the xxhash64 of k's full key.
func (k SetKey) Hash() uint64 { return k.hash }

// IsZero reports whether k is the zero SetKey, which names no set.
func (k SetKey) IsZero() bool { return k.key == "" }

// Kind returns whether k names a collection or an index set; 0 for the
// zero SetKey.
func (k SetKey) Kind() SetKind {
	if k.key == "" {
		return 0
	}
	return SetKind(k.key[0])
}

// Name returns the collection's or the index's name.
func (k SetKey) Name() string {
	name, _ := k.split()
	return name
}

// Terms returns the terms an index set is matched on: empty for a
// term-less index and for a collection.
func (k SetKey) Terms() canonical.Tuple {
	_, terms := k.split()
	return canonical.Tuple(terms)
}

func (k SetKey) split() (name, terms string) {
	switch k.Kind() {
	case SetCollection:
		return k.key[1:], ""
	case SetIndex:
		n := strings.IndexByte(k.key, 0x00)
		return k.key[1:n], k.key[n+1:]
	}
	return "", ""
}

// String returns k in Fauna's notation: Collection(spells),
// Match(spells_by_element, "fire"), Match(all_spells).
func (k SetKey) String() string {
	name, terms := k.split()
	switch k.Kind() {
	case SetCollection:
		return "Collection(" + name + ")"
	case SetIndex:
		b := []byte("Match(" + name)
		for _, v := range canonical.Tuple(terms).Values() {
			b = canonical.AppendJSON(append(b, ", "...), v)
		}
		return string(append(b, ')'))
	}
	return "SetKey()"
}

// SetMap maps set keys to values, looking a key up by its 64-bit hash and
// confirming by the full key, so that sets whose hashes collide stay
// apart. A lookup is one probe of a uint64-keyed Go map and a comparison
// of full keys, whatever the number of keys. The zero SetMap is empty and
// ready to use. It is not safe for concurrent use.
type SetMap[V any] struct {
	buckets map[uint64][]setSlot[V]
	n       int
}

type setSlot[V any] struct {
	key string
	val V
}

// Get returns the value stored for k.
func (m *SetMap[V]) Get(k SetKey) (V, bool) {
	for _, s := range m.buckets[k.hash] {
		if s.key == k.key {
			return s.val, true
		}
	}
	var zero V
	return zero, false
}

// Put stores v for k, replacing any value stored for k before.
func (m *SetMap[V]) Put(k SetKey, v V) {
	if m.buckets == nil {
		m.buckets = map[uint64][]setSlot[V]{}
	}
	b := m.buckets[k.hash]
	for i := range b {
		if b[i].key == k.key {
			b[i].val = v
			return
		}
	}
	m.buckets[k.hash] = append(b, setSlot[V]{k.key, v})
	m.n++
}

// Delete removes k and reports whether it was there.
func (m *SetMap[V]) Delete(k SetKey) bool {
	b := m.buckets[k.hash]
	for i := range b {
		if b[i].key == k.key {
			if len(b) == 1 {
				delete(m.buckets, k.hash)
			} else {
				m.buckets[k.hash] = append(b[:i:i], b[i+1:]...)
			}
			m.n--
			return true
		}
	}
	return false
}

// Len returns the number of keys in m.
func (m *SetMap[V]) Len() int { return m.n }

// All yields every key and value in m, in no particular order. m must not
// be changed during the iteration.
func (m *SetMap[V]) All() iter.Seq2[SetKey, V] {
	return func(yield func(SetKey, V) bool) {
		for h, b := range m.buckets {
			for _, s := range b {
				if !yield(SetKey{hash: h, key: s.key}, s.val) {
					return
				}
			}
		}
	}
}
