// Package broker is the embeddable core of tidings: it commits
// transactions of document writes and delivers every change, in txn order,
// to the subscriptions that follow a document or a set. What it promises is
// numbered under Guarantees, at the end, and the tests that prove each
// promise cite its number.
//
// # Commits
//
// Commit runs a function with a Tx (Get, Create, Replace, Update, Delete,
// Upsert): its writes are appended to the log under one txn, applied to the
// documents and indexes, and delivered, all or nothing. A refused write is
// a *WriteError wrapping a sentinel (ErrExists, ErrNotFound, ErrNotObject,
// ErrInvalidJSON, ErrInvalidRef, ErrUnknownCollection); a closed broker
// returns ErrClosed.
//
// Data is read strictly: a string (key or value) that is not valid UTF-8
// is refused with ErrInvalidJSON, and a ref whose collection or id is not
// with ErrInvalidRef, rather than stored and sent back to every client on
// every replay. Data is stored compacted, with U+2028, U+2029 and U+0085
// escaped in its strings (the same JSON value), so that clients that split
// lines by Unicode's rules see every event on one line (Guarantee 10).
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
//
// # Durability
//
// The default log is in memory: a restart starts empty, under a new log
// ID, and old cursors are refused with ErrHistoryUnavailable. For a broker
// that survives restarts, give it a *txlog.FileLog:
//
//	l, err := txlog.OpenFile(dir, txlog.FileOptions{})
//	b, err := broker.New(broker.Options{Log: l, Schema: schema})
//
// On restart New rebuilds the documents and index entries from the newest
// checkpoint and the log after it, txns go on upward, and subscribers
// resume across the restart with their cursors.
//
// Options.Log takes any txlog.Log: the broker stages each commit's record
// under its commit lock and waits for it outside, and uses the
// txlog.Durable methods of a log that has them (Sync before a checkpoint,
// KeepAfter to hold retention at the oldest checkpoint, Dir for where
// checkpoints go). A log of your own shows that it keeps that contract by
// running the conformance suite, txlog/logtest.
//
// A commit's events are delivered only once its record is as durable as
// the log promises (txlog.Log's Wait returns), and Commit returns only
// then. For a file log, that is what its txlog.SyncPolicy says:
//
//   - SyncBatch (the default): the record is written and fsynced. Nothing
//     Commit acknowledged, and no event a subscriber received, is lost to a
//     crash of the process or of the machine. Concurrent commits share one
//     fsync (the commit lock is not held across it), so throughput grows
//     with the number of committers.
//   - SyncInterval: the record is written to the operating system, and
//     fsynced every FileOptions.SyncInterval. A crash of the process loses
//     nothing; a crash of the machine (power, kernel) loses the commits of
//     the last interval at most, though Commit acknowledged them and
//     subscribers may have received their events.
//   - SyncNever: as SyncInterval, but fsynced only when a segment is full,
//     at a checkpoint, and on Close: a crash of the machine may lose
//     everything since.
//
// A commit that is lost that way is lost whole (the log never keeps part
// of a record), and so are the commits after it; a cursor of a lost commit
// is refused with ErrHistoryUnavailable until the log's head passes it.
//
// Checkpoints (CheckpointOptions, on by default with a file log, or any
// txlog.Durable log with a directory) write every document at one txn, and
// its index entries, to a file, atomically and checksummed, when the writes since the last one add
// up to Every bytes or Interval passes, and on Close if anything was
// written since the last. The writes count across restarts: what a restart
// replays counts towards the next checkpoint, so that a process restarted
// or killed before each Every bytes still checkpoints once its lives' writes
// add up, and retention still reclaims the log. Close's checkpoint makes
// the next start replay nothing; Close waits for it, as long as any
// checkpoint takes (every document and index entry written once: about
// 1.5 s for a million documents of 270 bytes with two indexes on two
// cores). A process killed meanwhile loses
// nothing, nor does a Close whose checkpoint fails: that is logged, the log
// is closed all the same, and the next start replays the log.
// A restart reads the newest checkpoint and replays only the log after it.
// It loads the checkpoint's index entries as they are if the index
// definitions are those that wrote it (then diffs the documents the log
// changed since), and rebuilds them from the documents otherwise. The
// log's retention (FileOptions.MaxBytes, MaxAge) may delete what the
// oldest kept checkpoint covers, never more. A damaged checkpoint is
// skipped for an older one, or for the whole log (one ahead of the log, as
// a machine crash under SyncNever could leave it, is also renamed with the
// suffix .ahead, so that it is never used later); where nothing can rebuild
// the state, New fails with an error wrapping ErrNoState that names each
// checkpoint tried and what was wrong with it. A checkpoint of the first
// format (documents only) is read, its entries rebuilt; one of a format
// this version does not know is skipped as damaged.
//
// If the log fails to write or fsync, the fate of the commits waiting for
// it is unknown until the log is reopened: they fail, the broker stops
// (later commits and subscriptions fail with the log's error) and every
// stream ends with shutting_down and its last cursor. A new process (or
// New on the reopened log) rebuilds the state from what the log holds.
//
// # Several nodes on one log
//
// On a txlog.Shared log (txlog/jetstream's, on a JetStream stream), each
// broker is one node of a replicated broker: its state and its events
// come only from the records it follows, every node's, in log order, so
// every node delivers the same events with the same cursors and a client
// resumes on any node. Commit appends only after the record its state is
// at (txlog.Shared's StageAfter), runs the transaction again when another
// node appended first (up to MaxCommitAttempts, then ErrConflict), and
// returns once this node has applied the record. A cursor taken on a node
// further ahead waits up to CursorWait for this one to catch up. A node
// that hears nothing from its log for Options.CutOffAfter ends its streams
// with shutting_down and their cursors, and refuses work with ErrCutOff
// until it hears again. Checkpoints can be shared (CheckpointOptions'
// Store), so that a new node starts from one and the log after it. Every
// node must be given the same schema. See examples/cluster.
//
// # Guarantees
//
// Every front (the Go iterator, and the HTTP transports on top of it) gets
// these from the broker. Tests cite them as "Guarantee N (broker package
// doc)".
//
//  1. Order: a transaction's events are delivered together, in the order
//     of its writes; a stream's events are in txn order; every event after
//     start has a txn above the start txn.
//  2. Snapshot: a snapshot is the target's state at exactly the start txn:
//     no change at or before it is delivered after it, and none after it
//     is missing. A snapshot is never resumed halfway: a stream that
//     starts with one withholds the start cursor (its start event has
//     none, nor have the pages before the last) until the last page
//     (subscription.ActionLastPage), which carries it. A subscriber cut off
//     within the snapshot has no cursor, and starts again; every front
//     gets this as it is (PROTOCOL.md, "Events").
//  3. Resume: subscribing with an event's cursor delivers exactly the
//     events after that event, replayed from the log and then live, with
//     no gap and no duplicate at the seam; on a file log, across restarts
//     too.
//  4. No silent loss: a subscriber gets every event for its target, or an
//     error event that says why and from which cursor to resume. One whose
//     queue overflows reads the log at its own pace and rejoins live
//     delivery, losing nothing; one that falls behind the log's retention
//     gets history_unavailable naming its last cursor; a cursor the log
//     cannot resume from (of another log, before its retained history or
//     within a write that retention dropped, beyond its head) is refused
//     with ErrHistoryUnavailable before anything is delivered.
//  5. Publishers never wait for subscribers: a commit pushes its events to
//     bounded queues (subscription.Options' Buffer and BufferBytes) and
//     moves on, and an overflowing queue lets go of what it held, so a
//     subscriber costs bounded memory however slow it is.
//  6. Durability: Commit returns, and a commit's events are delivered, only
//     once its record is as durable as the log's txlog.SyncPolicy promises
//     (see Durability). A commit lost to a crash is lost whole, with every
//     commit after it; a restart on a file log rebuilds the state of the
//     commits the log kept, and its txns go on above every earlier one.
//  7. Shutdown: after Close, commits and subscriptions fail with ErrClosed,
//     and every stream ends with an error event shutting_down carrying the
//     cursor to resume from. A failed log stops the broker too: the
//     commits waiting for it fail, later commits and subscriptions fail
//     with its error, and every stream ends with shutting_down and its
//     last cursor (none if it has not delivered its start yet).
//  8. Encode once: an event is encoded once per write and field set, and
//     every subscriber with that field set gets the same bytes; a commit's
//     allocations do not grow with the number of subscribers it reaches.
//  9. All or nothing: a transaction is committed whole, under one txn, or
//     (refused, or given up by its function) leaves nothing: nothing is
//     logged, applied or delivered.
//  10. One line of text: every event's JSON is valid UTF-8 on one line by
//     any client's rules, with no raw CR, LF, U+2028, U+2029 or U+0085,
//     and its strings are the ones written: what would not be (invalid
//     UTF-8 in data or a ref) is refused when written. (A log written
//     before data was read so is replayed as it is.)
package broker
