// Package index defines indexes over a collection's documents, extracts
// their entries, computes the membership diff of each write, and keeps
// every set's members ordered for snapshots and paging.
//
// # Definitions
//
// A Schema declares collections and index Definitions: {Name, Collection,
// Terms, Values}, where terms and values are field paths into a document's
// data ("element", "stats.level"; see ParsePath). NewCatalog validates it
// (empty or malformed paths, invalid or duplicate names, an index on an
// undeclared collection) and compiles it into an immutable Catalog.
//
// # Entries
//
// A document has, in each index of its collection, the entries
// (terms, values, ref), following Fauna's rules:
//
//   - A path reads through objects. A missing field is null, and so is a
//     field under a key whose value is not an object.
//   - A document whose term field is missing (or null) is in the set
//     matched on null: Match(index, null). It is not left out of the index.
//   - An array-valued field yields one entry per element (an element that
//     is itself an array is one value); several array-valued fields yield
//     the cross product. An empty array yields no element, so a document
//     with an empty array in a term or value field has no entry in that
//     index. Duplicate entries ([1, 1.0]) count once.
//   - One document may have at most MaxEntriesPerDocument (1024) entries in
//     one index; beyond that its write fails with ErrTooManyEntries.
//
// # Equality and order of JSON values
//
// Terms and values compare as JSON values, exactly (no floating point):
// numbers are equal when they are the same decimal number (1, 1.0, 1e0,
// 10E-1 are equal; 0 and -0 are equal; 12345678901234567891 and
// 12345678901234567892 are not), "1" and 1 are not equal, strings are equal
// when their UTF-8 is (escapes decoded; invalid UTF-8 becomes U+FFFD, as
// encoding/json does), and objects are equal when they have the same keys
// with equal values (member order does not matter; of duplicate keys the
// last counts). The total order, as Fauna's, is
//
//	null < false < true < numbers < strings < arrays < objects
//
// numbers by value, strings by UTF-8 bytes (code point order), arrays
// element by element (a prefix first), objects as their members sorted by
// key, compared pairwise key then value (a prefix first).
//
// Every Value has one canonical encoding, a byte string whose bytewise
// order is this order and which is equal for equal values; entries, set
// keys and store keys are built from it (the layout is documented in
// encoding.go). Value.AppendJSON decodes it back into canonical JSON text.
//
// # Sets and set keys
//
// A set is a collection (Catalog.CollectionSet), an index matched on all
// its terms, or a term-less index (Catalog.MatchSet). A SetKey carries the
// set's full canonical key and its xxhash64: look subscribers up by the
// hash and confirm with the full key (SetMap does), so that a collision
// never delivers to the wrong set.
//
// # Diffs
//
// Catalog.Diff computes, for one write (the document's before and after
// images), the sets it leaves and enters with the old and new entries: see
// Diff. It reuses the Diff's buffers, allocating once per write that
// changes membership, and reads only the fields indexes use.
//
// # Store
//
// A Store keeps every set's members in B-trees ordered by (terms, values,
// ref ID), updated with Store.Apply(txn, diff), and pages through a set
// after a Position. The caller serialises writes; Store.Snapshot returns,
// cheaply, an immutable copy at the current txn that many goroutines can
// page through while writes continue: the broker's "members of the set at
// exactly txn T, paged".
//
// # Concurrency
//
// Catalog, SetKey, Value, Tuple, Entry, Position and Snapshot are
// immutable and safe for concurrent use. Catalog.Diff may run on many
// goroutines at once, each with its own Diff. Store and SetMap are not
// safe for concurrent use: the caller serialises access.
package index
