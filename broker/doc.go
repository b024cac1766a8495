// Package broker is the embeddable core of tidings: it commits
// transactions of document writes and delivers every change, in txn order,
// to the subscriptions that follow a document or a set.
//
// # Commits
//
// Commit runs a function with a Tx (Get, Create, Replace, Update, Delete,
// Upsert): its writes are appended to the log under one txn, applied to the
// documents and indexes, and delivered, all or nothing. A refused write is
// a *WriteError wrapping a sentinel (ErrExists, ErrNotFound, ErrNotObject,
// ErrUnknownCollection); a closed broker returns ErrClosed.
//
// # Subscriptions
//
// Subscribe returns a Subscription whose Events are a Go iterator: start,
// optional snapshot pages at exactly the start txn, then every change.
// Document streams carry version events (create, update, delete, with
// opt-in prev and diff); set streams carry set events (add, remove, and
// opt-in update), with the opt-in index field. Every event has a cursor;
// subscribing with a cursor resumes after that event, replayed from the log
// and then live, with no gap and no duplicate at the seam.
//
// # Delivery
//
// Each write is matched to its subscribers by hashed keys (its document
// ref, and the set keys of its membership diff), never by a scan; each
// event is encoded once per field set and the bytes are shared. A commit
// never waits for a subscriber: events wait in a bounded queue per
// subscriber, and a subscriber whose queue overflows reads the log at its
// own pace and then rejoins live delivery. It loses nothing unless it
// falls behind the log's retention, and then it is told so with an error
// event history_unavailable that names its last cursor. Close ends every
// stream with an error event shutting_down and the cursor to resume from.
package broker
