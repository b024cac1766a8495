// Package txlog is the ordered log of committed transactions that every
// other part of tidings stands on.
//
// A Record is one transaction: its txn (microseconds since the Unix epoch,
// strictly increasing within a log, from a Clock) and its writes, each with
// the document's before and after images, so that any subscription's events
// can be computed again from the record alone.
//
// A Log appends records in two halves, Stage (which fixes the record's txn
// and place) and Wait (which returns once it is durable), and reads them
// back in order after a Cursor: a log ID and a Pos (a txn and the op
// within it). A cursor that names another log, or a position that
// retention has dropped or that lies beyond the head, yields
// ErrHistoryUnavailable: never a silent gap.
//
// Two logs implement it:
//
//   - MemoryLog, the default: retention by record count, bytes and age.
//   - FileLog: a directory of append-only segment files, each record framed
//     with its length and an xxhash64 checksum; group commit, so that one
//     fsync covers every record waiting at the time (see SyncPolicy for
//     what each policy guarantees); recovery that truncates a record torn
//     by a crash at the tail and refuses damage anywhere else (ErrCorrupt).
//     It is also a Durable log.
//
// # Writing a log
//
// Another log (a different store, a replicated stream) implements Log,
// and Durable as well if it survives a restart: the broker then syncs it
// before each checkpoint, holds its retention at the oldest checkpoint,
// and by default keeps checkpoints in its Dir. A log that is not Durable
// is treated as one that loses everything with its process. The doc
// comments of Log and Durable are the contract, concurrency included;
// the package txlog/logtest checks it, and a log should run logtest.Run
// from its tests, under -race.
package txlog
