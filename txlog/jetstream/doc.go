// Package jetstream is a txlog.Log on one NATS JetStream stream, for when
// one machine is not enough: a replicated, ordered stream run by servers
// operators already trust, instead of a home-made one. It is a module of
// its own, so that the core library does not depend on NATS.
//
//	nc, _ := nats.Connect(url)
//	js, _ := jetstream.New(nc) // github.com/nats-io/nats.go/jetstream
//	log, err := tjs.Open(ctx, js, tjs.Options{Stream: "spells", Replicas: 3})
//	b, err := broker.New(broker.Options{Log: log, Schema: schema})
//
// It passes the conformance suite txlog/logtest, on one server and on an
// R3 stream of a three-server cluster.
//
// # Records
//
// A record is one message, on Options.Subject, in the record encoding of
// the file log (txlog.AppendRecord), with a header naming the position of
// the last write of the record before it, so that Oldest is exact however
// retention dropped that record. A record larger than a message goes in
// parts (see Limits). Positions map to stream sequences; the
// log finds the sequence of a cursor from the sequences it has seen, or by
// bisecting the stream. Txns strictly increase in stream order: the log
// reads the last record when it opens, and its clock never goes below it.
// The log's identity is the stream's name and creation time: a stream
// deleted and made again is another log, and old cursors fail with
// txlog.ErrHistoryUnavailable.
//
// # Appending
//
// Stage publishes at once, without waiting, each message expecting the
// stream's last message to be the one staged before it, by sequence and
// by message ID: the appends form a chain the stream takes in order, many
// at once on the wire, and that stops at the first link another appender
// displaced (by sequence alone, the links after it would land after the
// other's record). Wait returns when the record and all before it are
// acknowledged; Head moves in staging order. A message's ID is the log's
// identity and its txn, which JetStream de-duplicates: an append whose
// outcome is unknown (a timeout, a lost connection, a leader killed) is
// sent again until Options.RetryFor, and answered with the sequence it got
// the first time. If the stream holds another appender's record where the
// log expected to append, that append and the rest of its chain fail with
// ErrConflict; once they are settled, the log follows the stream's last
// record, and the next Stage appends after it.
//
// # Several nodes
//
// The log is a txlog.Shared: Follow yields every record as the stream
// gets it, this log's and other appenders' (a node learns what the others
// commit), StageAfter appends only after a given record (a node commits
// only on the state it has), and Contact says when the servers last
// answered. A broker on it is one node of a replicated broker (see the
// broker package doc); Checkpoints keeps the nodes' checkpoints in an
// object store, and purges the stream below the oldest one kept.
//
// # What an acknowledged append means
//
// An acknowledgement means the record is stored on a quorum of the
// stream's replicas (one server for R1), not that it is on disk:
// JetStream syncs its files every two minutes by default. A record is lost
// only if a quorum of servers loses power within that window. For the file
// log's guarantee, fsync before the acknowledgement, set the servers'
// sync_interval to always (jetstream { sync_interval: always } in their
// configuration), at a cost: about 660 appends/s on one server where 10k
// were acknowledged without it, on the machine these numbers came from.
//
// # Reading
//
// Short reads get records one by one from the stream's leader (never from
// a replica, which may lag behind an acknowledgement); longer ones stream
// them through an ordered consumer. Every record's sequence is checked
// against the one expected: JetStream starts a consumer asked for a
// dropped sequence at the first it has, silently, and the log reports that
// as txlog.ErrHistoryUnavailable, never as a skip. A consumer that stops
// delivering while records are known to be there (seen across a failover)
// is made again from where it stopped.
//
// # Limits
//
// A message holds at most the servers' max_payload (1 MiB by default), its
// headers included. A larger record goes in parts, consecutive messages
// published as one JetStream atomic batch (nats-server 2.12 and later; a
// stream Open creates allows them), which the stream stores all together
// or not at all; readers put the parts together. A batch can expect the
// stream's last sequence but not its last message ID, so a record in parts
// waits for the appends staged before it, and Stage returns once it is in
// the stream: such records are not pipelined. Retention drops messages,
// not records: a record whose first parts it dropped is gone, and Oldest
// is after it. On a stream without atomic batches, and beyond the servers'
// batch size (1000 messages by default), Stage refuses a record larger
// than a message with ErrTooLarge.
package jetstream
