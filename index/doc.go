// Package index is the vocabulary of indexes: the Schema an application
// declares (its collections and index Definitions), the rules by which a
// document's fields become index entries, and the JSON Values that terms
// are matched on and ordered by. The broker takes a Schema
// (broker.Options.Schema, Broker.DefineIndex); a subscription matches an
// index on terms (subscription.Match), given as Go values or Values.
//
// # Definitions
//
// A Schema declares collections and index Definitions: {Name, Collection,
// Terms, Values}, where terms and values are field paths into a document's
// data ("element", "stats.level"; see ParsePath). The broker validates it
// (empty or malformed paths, invalid or duplicate names, an index on an
// undeclared collection) with errors wrapping this package's sentinels.
//
// A set is a collection, an index matched on all its terms (Fauna's
// Match(Index("spells_by_element"), "fire")), or a term-less index (every
// document with an entry). Its members are ordered by (terms, values, ref
// ID): snapshots and pages list them in that order, and set events carry
// the entry's terms and values.
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
// Every Value has one canonical form, so that == on two Values is JSON
// equality; Value.AppendJSON writes it as canonical JSON text (numbers in
// shortest exact form, object members sorted by key).
//
// # Concurrency
//
// Value is immutable and safe for concurrent use. The entry store that
// applies these rules (extraction, membership diffs, ordered sets) is the
// broker's machinery, in internal/entrystore.
package index
