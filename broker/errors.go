package broker

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/internal/jsondoc"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// Sentinel errors, tested with errors.Is: with those of the log (a log
// failure wraps the log's own error), these are every error a caller of
// the broker can get, so that a front (an HTTP transport) can map them to
// its responses in one table. A failed write is a *WriteError that wraps
// one of them.
var (
	// ErrExists: Create of a document that exists.
	ErrExists = errors.New("broker: document exists")
	// ErrNotFound: Replace, Update or Delete of a missing document; a
	// document stream (without a cursor) on a missing document, as Fauna.
	ErrNotFound = errors.New("broker: document not found")
	// ErrNotObject: a document's data that is not a JSON object.
	ErrNotObject = jsondoc.ErrNotObject
	// ErrInvalidJSON: a document's data (or an update's patch, or the
	// document it merges into) that is not valid JSON, or has a string
	// that is not valid UTF-8 (an invalid byte, or an escaped surrogate
	// without its pair), in a key or a value at any depth. Such a string
	// is refused rather than stored, where it would break strict clients
	// on every replay. Data that is not JSON at all is ErrNotObject too.
	ErrInvalidJSON = index.ErrInvalidJSON
	// ErrInvalidRef: a write whose ref has an empty id, or a collection or
	// id that is not valid UTF-8; also a document target with such a ref
	// (wrapped in ErrInvalidTarget).
	ErrInvalidRef = errors.New("broker: invalid ref")
	// ErrUnknownCollection: a write to, or a set of, a collection the
	// schema does not declare.
	ErrUnknownCollection = index.ErrUnknownCollection
	// ErrClosed: the broker is closed.
	ErrClosed = errors.New("broker: closed")
	// ErrCutOff: a node of a replicated broker has not heard from its
	// shared log for Options.CutOffAfter, so it takes no commits and no
	// subscriptions until it does (its streams ended with shutting_down
	// and their cursors, to resume on another node). It wraps ErrClosed,
	// so that every front answers it as a broker that is going away.
	ErrCutOff = fmt.Errorf("broker: cut off from the shared log; resume on another node: %w", ErrClosed)
	// ErrHistoryUnavailable: a cursor older than the retained history, or
	// from another log (a restarted in-memory broker). Start again with a
	// snapshot.
	ErrHistoryUnavailable = txlog.ErrHistoryUnavailable
	// ErrInvalidCursor: a cursor string that does not parse.
	ErrInvalidCursor = txlog.ErrInvalidCursor
	// ErrInvalidRewrite: a history rewrite at a ts the document's current
	// version does not come after.
	ErrInvalidRewrite = errors.New("broker: invalid history rewrite")
	// ErrInvalidTarget: a target that cannot be followed (no kind, an
	// unknown collection or index, the wrong number of terms). The error
	// also wraps the reason: ErrUnknownCollection, ErrUnknownIndex or
	// ErrTermCount.
	ErrInvalidTarget = subscription.ErrInvalidTarget
	// ErrInvalidOptions: subscription options out of range (an unknown
	// field, a page size).
	ErrInvalidOptions = subscription.ErrInvalidOptions
	// ErrUnknownIndex: a set of an index the schema does not declare.
	ErrUnknownIndex = index.ErrUnknownIndex
	// ErrTermCount: a match with the wrong number of terms for its index.
	ErrTermCount = index.ErrTermCount
	// ErrTooManyEntries: a write whose document would have more index
	// entries than index.MaxEntriesPerDocument.
	ErrTooManyEntries = index.ErrTooManyEntries
)

// WriteError says which write of a transaction failed, and why.
type WriteError struct {
	Op  string // create, replace, update, delete, upsert, rewrite
	Ref txlog.Ref
	Err error
}

func (e *WriteError) Error() string {
	// The sentinels say "broker: " themselves: once is enough.
	return fmt.Sprintf("broker: %s %s: %s", e.Op, e.Ref, strings.TrimPrefix(e.Err.Error(), "broker: "))
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *WriteError) Unwrap() error { return e.Err }
