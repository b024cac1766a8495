package entrystore

import "errors"

// Sentinel errors of the store, tested with errors.Is. Errors about the
// schema and the indexed values wrap package index's sentinels instead.
var (
	// ErrNotObject: a document's data is valid JSON but not an object.
	ErrNotObject = errors.New("index: document data is not a JSON object")
	// ErrCatalogMismatch: a Diff made by one Catalog was applied to a Store
	// of another, or a SetKey's terms do not fit the Store's index of its
	// name.
	ErrCatalogMismatch = errors.New("index: diff is from another catalog")
	// ErrInconsistent: a Diff does not fit the Store: it removes an entry
	// the Store does not hold, or adds one it already holds. The Store was
	// not changed. It means the diff's before image is not the state the
	// Store was built from.
	ErrInconsistent = errors.New("index: diff does not match the store")
	// ErrTxnOrder: Store.Apply was given a txn lower than one already applied.
	ErrTxnOrder = errors.New("index: txn goes backwards")
	// ErrInvalidPosition: a Position's text form does not decode.
	ErrInvalidPosition = errors.New("index: invalid position")
)
