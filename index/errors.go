package index

import (
	"errors"

	"github.com/tidings/tidings/internal/canonical"
	"github.com/tidings/tidings/internal/jsondoc"
)

// Sentinel errors. Every error this package returns wraps one of them, and
// so does every error about a Schema, an index or an indexed value that
// the broker returns (from New, DefineIndex, Commit), with details such as
// the offending name, path or offset: test for them with errors.Is.
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
	// ErrUnknownCollection: a collection is not declared in the Schema.
	ErrUnknownCollection = errors.New("index: unknown collection")
	// ErrUnknownIndex: no index of that name is defined in the Schema.
	ErrUnknownIndex = errors.New("index: unknown index")
	// ErrTermCount: a set was asked for with a number of terms other than
	// the number its index defines.
	ErrTermCount = errors.New("index: wrong number of terms")
	// ErrInvalidJSON: input is not valid JSON (RFC 8259), or is nested
	// deeper than 10000 levels (the limit encoding/json also applies).
	ErrInvalidJSON = jsondoc.ErrInvalidJSON
	// ErrNumberRange: a number to be indexed has a decimal exponent outside
	// the range this package encodes (about ±2^31), such as 1e9999999999.
	ErrNumberRange = canonical.ErrNumberRange
	// ErrTooManyEntries: one document would yield more than
	// MaxEntriesPerDocument entries in one index (array fan-out).
	ErrTooManyEntries = errors.New("index: too many entries for one document")
)

// MaxEntriesPerDocument caps the entries one document may have in one
// index. Array-valued fields fan out into one entry per element, and
// several array-valued fields into their cross product (tags × colors);
// a document beyond the cap is refused with ErrTooManyEntries rather than
// silently indexed in part.
const MaxEntriesPerDocument = 1024
