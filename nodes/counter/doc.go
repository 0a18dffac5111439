// Package counter is a deliberately small durable service that exists to
// prove the simulator: one server keeps a counter as an append-only log of
// increments on its disk, and clients increment it over the network with
// retries.
//
// Protocol. A client has at most one increment outstanding and numbers them
// 1, 2, 3…; an increment is identified by (client, seq) and retried with the
// same seq until acknowledged. The server applies a seq greater than the
// client's last one, answers a repeat of the last one with its original
// position (so retries are idempotent) and refuses older ones.
//
// Durability. Each increment is one 16-byte record (client, seq, crc32c)
// appended to the current segment file; the server acknowledges an increment
// only after a Sync that covers it (group commit: one flusher task syncs for
// every waiting handler). A new segment's directory entry is made durable
// with SyncDir before any record in it is acknowledged. At start-up the log
// directory is synced before anything in it is trusted (an earlier
// incarnation may have created a segment and then failed its SyncDir, leaving
// an entry a crash can still undo), then the log is read back; a torn tail (a record that fails its checksum, or a partial
// one) in the last segment is cut off, which loses only unacknowledged
// increments. A write or sync error is fatal (Config.OnFatal): after a
// failed fsync the page cache cannot be trusted, so the process must exit
// and recover from durable state.
//
// Invariants: the acknowledged value of an increment is its 1-based
// position in the durable log and never changes; every record in the log
// was sent by a client; no (client, seq) appears twice.
//
// Planted bugs (Config.Bugs, switched on only by the simulator): acking
// before the covering sync, creating a segment without syncing its
// directory, and applying a retried increment again.
package counter
