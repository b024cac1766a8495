// Package entrystore turns a schema's index definitions into the ordered
// sets the broker serves: it compiles an index.Schema into a Catalog,
// extracts each document's index entries (terms, values, ref), computes
// the membership Diff of each write (the sets a document leaves and
// enters), and keeps every set's members in a Store of B-trees, ordered by
// (terms, values, ref ID), with cheap immutable Snapshots for paging while
// writes continue and a Bulk build for restarts.
//
// The rules it follows (Fauna's: missing fields are null, arrays fan out
// into one entry per element, at most index.MaxEntriesPerDocument entries
// per document and index) and the equality and order of JSON values are
// documented in package index; the byte encodings are package canonical's.
//
// # Sets and set keys
//
// A set is a collection (Catalog.CollectionSet), an index matched on all
// its terms, or a term-less index (Catalog.MatchSet, Catalog.MatchTerms).
// A SetKey carries the set's full canonical key and its xxhash64: look
// subscribers up by the hash and confirm with the full key (SetMap does),
// so that a collision never delivers to the wrong set.
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
// Catalog, SetKey, Entry, Position and Snapshot are immutable and safe for
// concurrent use. Catalog.Diff may run on many goroutines at once, each
// with its own Diff. Store, Bulk and SetMap are not safe for concurrent
// use: the caller serialises access.
package entrystore
