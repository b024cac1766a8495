package index

// Definition defines one index: which collection's documents it reads, the
// field paths of its terms (what a set matches on) and of its values (what
// entries are ordered by after the terms, and what set events carry).
//
// A field path names a field of the document's data, with dots between the
// keys of nested objects: "element", "stats.level". See ParsePath.
// Both Terms and Values may be empty: an index without terms is one set
// (every document with an entry), ordered by its values and then ref.
type Definition struct {
	Name       string
	Collection string
	Terms      []string
	Values     []string
}

// Schema declares the collections of an application and the indexes on
// them: what broker.Options.Schema takes, and what Broker.DefineCollection
// and Broker.DefineIndex extend. The broker validates it (names, paths,
// duplicates, an index on an undeclared collection), with errors wrapping
// this package's sentinels.
type Schema struct {
	Collections []string
	Indexes     []Definition
}
