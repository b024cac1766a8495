package index

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns wraps one of them (with
// details such as the offending name, path or offset), so that callers test
// for them with errors.Is.
var (
	// ErrInvalidName: a collection or index name is empty, not valid UTF-8,
	// or contains a control character.
	ErrInvalidName = errors.New("index: invalid name")
	// ErrInvalidPath: a field path is empty or malformed (an empty segment,
	// as in "a..b", ".a" or "a.", or a segment that is not valid UTF-8).
	ErrInvalidPath = errors.New("index: invalid field path")
	// ErrDuplicateCollection: a Schema declares the same collection twice.
	ErrDuplicateCollection = errors.New("index: duplicate collection")
	// ErrDuplicateIndex: a Schema defines two indexes with the same name.
	ErrDuplicateIndex = errors.New("index: duplicate index name")
	// ErrUnknownCollection: a collection is not declared in the Catalog.
	ErrUnknownCollection = errors.New("index: unknown collection")
	// ErrUnknownIndex: no index of that name is defined in the Catalog.
	ErrUnknownIndex = errors.New("index: unknown index")
	// ErrTermCount: a set was asked for with a number of terms other than
	// the number its index defines.
	ErrTermCount = errors.New("index: wrong number of terms")
	// ErrInvalidJSON: input is not valid JSON (RFC 8259), or is nested
	// deeper than 10000 levels (the limit encoding/json also applies).
	ErrInvalidJSON = errors.New("index: invalid JSON")
	// ErrNotObject: a document's data is valid JSON but not an object.
	ErrNotObject = errors.New("index: document data is not a JSON object")
	// ErrNumberRange: a number to be indexed has a decimal exponent outside
	// the range this package encodes (about ±2^31), such as 1e9999999999.
	ErrNumberRange = errors.New("index: number out of range")
	// ErrTooManyEntries: one document would yield more than
	// MaxEntriesPerDocument entries in one index (array fan-out).
	ErrTooManyEntries = errors.New("index: too many entries for one document")
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

// syntaxError reports invalid JSON at byte offset off.
func syntaxError(off int, msg string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrInvalidJSON, msg, off)
}
