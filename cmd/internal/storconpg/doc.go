// Package storconpg is the storage controller's persist.Store on
// PostgreSQL, through pgx and a bounded pgxpool. It passes the same
// conformance suite as the embedded store (nodes/storcon/persist/persisttest).
//
// Why here and not under nodes/: it needs the network and a database
// driver that starts goroutines and reads the real clock, which the
// determinism lint forbids in nodes/ (docs/architecture.md, Determinism
// rules). It is real-mode only, like the gRPC and HTTP adapters; the
// controller takes a persist.Store, so the daemon in cmd/ chooses this one
// (--database-url) or the embedded store (--data-dir), and the simulator
// always runs the embedded one.
//
// Schema. Two tables as Neon's storage controller has them: tenant_shards,
// keyed by (tenant_id, shard_number, shard_count) with shard_stripe_size,
// generation, generation_pageserver, placement_policy (JSON text),
// splitting (0/1), config (JSON text), scheduling_policy and
// preferred_az_id; and nodes, keyed by node_id, with scheduling_policy,
// listen addresses and ports (http, pg, grpc), availability_zone_id and
// lifecycle. The SQL files under migrations/ are embedded in the binary and
// applied at Open, in name order, each once, recorded in schema_migrations,
// all in one transaction under an advisory lock so controllers starting
// together do not race; a database that has a migration this binary does not
// know is refused (ErrSchema), so an older controller never runs on a newer
// schema.
//
// Generations. IncrementGeneration is one statement (UPDATE … SET
// generation = generation + 1, generation_pageserver = node … RETURNING)
// and ReAttach is one statement over every row whose generation_pageserver
// is the node, so each is atomic and durable once PostgreSQL commits it. A
// CHECK on the generation's range makes an increment past the largest
// generation fail the whole statement (persist.ErrGenerationExhausted).
// Multi-row changes (an insert of a tenant's shards, an update with a
// generation, a split's begin, commit and abort) run in one transaction
// that first locks the rows it decides on (SELECT … FOR UPDATE). Argument
// checks are persist's own (ValidateInsert, ValidateUpdate, ValidateSplit…),
// so both stores refuse the same calls with the same classes.
//
// Errors wrap persist's sentinels; a unique violation is persist.ErrExists.
// An error from the database or the network leaves the outcome unknown (a
// commit whose answer was lost), as the persist.Store contract allows.
package storconpg
