// Package persist holds the storage controller's durable state behind one
// interface, Store, and its embedded implementation, DiskStore, which keeps
// that state in a directory of the disk seam and so runs unchanged in the
// simulator. The PostgreSQL implementation lives in cmd/internal/storconpg
// (the network and database driver it needs are not allowed under nodes/).
// Remote is a Store served by a Server over the net seam, the simulator's
// stand-in for a PostgreSQL database that several controller processes
// share (see Remote store below). All three pass the conformance suite in
// persisttest.
//
// # What is persisted and what is rebuilt
//
// The controller writes down only what it could not learn again after a
// restart:
//
//   - Generations. Each shard's latest generation and the node it was issued
//     to. A generation must only ever increase — a pageserver holding an
//     older one must lose every validate call — so it is incremented here,
//     durably, before any pageserver hears of it, and re-attach increments
//     every generation of the restarting node in one step.
//   - Policies. A shard's placement policy, tenant config, shard scheduling
//     policy and preferred availability zone, and each node's scheduling
//     policy: they come from operators and APIs, and nothing else
//     remembers them.
//   - The node registry: which pageservers exist, where they listen, their
//     availability zone and whether they were deleted.
//   - Tenant shard rows: which shards each tenant has (count, stripe size).
//   - Splitting marks: a shard split in progress, so that start-up can roll
//     it back or finish it instead of leaving keys without an owner.
//
// Everything else is rebuilt at start-up from the pageservers and is never
// stored: observed state (what each node holds, learned by reading every
// node's locations), secondary locations (the same), node availability
// (heartbeats), the intent (attached and secondary nodes, scheduled again
// from observed state and the policies), the scheduler's per-node counts
// (recomputed from intent) and pending compute notifications (sent again
// once intent is known).
//
// # Contract
//
// A mutating call returns nil only after its change is durable, and a
// change is all-or-nothing: an insert of several shards, a split's begin
// or commit and a re-attach are each one transaction. Errors are the
// package's sentinels wrapped with %w; ErrNotFound, ErrExists, ErrConflict,
// ErrInvalid and ErrGenerationExhausted mean nothing changed, any other
// error leaves the outcome unknown. Validation (ValidateNode,
// ValidateTenantShard, limits such as MaxJSONBytes) is shared, so every
// implementation refuses the same calls.
//
// # Embedded store
//
// DiskStore keeps the whole state in memory and makes it durable in one
// directory:
//
//   - "log-<n>": the log, transactions n, n+1, … appended one record each
//     (a 12-byte header of length, payload crc32c and a crc32c of the
//     header, then the transaction as JSON: the after-image of every row
//     it changes). Each mutation appends its record and syncs the file
//     before it touches memory or returns, and mutations are serialized,
//     so at most the last record can be unsynced.
//   - "snapshot": the whole state as of one transaction, written with
//     disk.WriteFileAtomic (magic, length, crc32c, JSON).
//
// Once the log reaches DiskConfig.MaxLogBytes the state is compacted: the
// snapshot is replaced, an empty log starting after it is created and made
// durable (file and directory synced), and the old log is removed. Open
// syncs the directory, reads the snapshot, replays every log's
// transactions after it (numbers must follow without a gap), cuts a torn
// tail off the newest log — only what a crash can leave of one unsynced
// append, see decodeLog — and syncs the log (or compacts) before serving,
// so nothing it replayed from a page cache is lost to a later crash. A bad
// checksum anywhere else, a gap, or an entry it does not know is
// ErrCorrupt, never skipped. A failed write or sync breaks the store
// (ErrFailed on every later call) until it is reopened, because the log
// may then end in a partial record. The one loss decodeLog cannot tell
// from a crash is damage to the very last, already synced record, which
// it treats as a torn tail.
//
// # Remote store
//
// Server serves any Store (in the simulator, a DiskStore on the disk of a
// "db" node) on a net.Router, one POST route per Store method with JSON
// bodies; Remote is the client, over any net.HTTPClient (net.DialHTTP in
// the simulator, httpx over real HTTP). It exists so that the simulator
// can run what production runs with PostgreSQL: two controller processes
// — one taking over from the other — reading and writing one database,
// where one process's memory can fall behind what the other stored.
//
//   - Every call is one request, never retried by the client (an
//     increment sent twice issues two generations). Once sent it runs to
//     its answer within RemoteConfig.CallTimeout even if the caller's
//     context ends: like the embedded store, which finishes a write it
//     started, cancelling the caller does not make an outcome unknown.
//   - Values cross the wire exactly: ids field by field (so an invalid one
//     still reaches the store, which refuses it as every store does), and
//     text byte for byte (base64 when it is not valid UTF-8).
//   - The argument classes (ErrNotFound, ErrExists, ErrConflict,
//     ErrInvalid, ErrGenerationExhausted) and ErrCorrupt each travel as
//     their own status code with the store's message, and the client
//     rebuilds the class only when both agree.
//   - Any other failure — no connection, no answer within
//     RemoteConfig.CallTimeout, a broken connection, a server-side error —
//     is ErrUnreachable: the outcome is unknown, the change may have been
//     made. The controller treats it as the failed write it may be, and
//     never as ErrFailed (which would stop it until a restart).
//   - A store that fails (ErrFailed) is closed by the Server and reopened
//     on the next call, recovering from what is durable; the client of the
//     failed call sees ErrUnreachable.
//
// A --database-url style flag for the daemon is not provided: outside the
// simulator, PostgreSQL plays this part.
//
// Invariants: a generation never decreases (apply refuses a change that
// would lower one, so even a damaged log cannot); memory holds exactly the
// durable transactions; no goroutines, channels or real time (the
// determinism rules of docs/architecture.md), writers wait on a
// clock.Mutex, and every list is sorted.
package persist
