// Package safekeeper is the WAL service: it makes a compute's WAL durable
// on a quorum of safekeepers, serves it to pageservers and offloads it to
// object storage.
//
// A Safekeeper holds timelines (one per tenant/timeline pair), each an
// engine/skproto Acceptor over a walstore.Store. It is written purely
// against node.Env, so the same code runs as the cmd/safekeeper daemon
// (gRPC, OS disk) and inside the simulator.
//
// Clients import nodes/safekeeper/skapi (wire messages, method names,
// conversions, client helpers), never this package.
//
// Durability rules (the consensus depends on them):
//   - the term is persisted before a vote leaves (ProposerElected state too);
//   - WAL is written and synced before the AppendResponse that acknowledges
//     it is sent;
//   - truncation is durable before the new term history is persisted.
//
// Persisted: the control file (term, term history, a lagging commit LSN,
// backup LSN) and the WAL segments. Rebuilt at start-up: the flush LSN (by
// scanning frames), the in-memory commit LSN, which proposer is followed.
//
// A timeline whose control file or segments fail their checksums is
// reported (log, metric, DataLoss to callers) and never served. An I/O
// error while writing makes the timeline reload itself from disk, exactly
// as a restart would.
//
// Offload: sealed segments wholly below the commit LSN are uploaded to
// wal/<tenant>/<timeline>/<segment> by one safekeeper per timeline: among
// the live peers (broker entries younger than Config.PeerLiveness) whose
// flush LSN covers the segment, sorted by id, the one at index
// hash(timeline id) mod count. Uploads are idempotent, so a short overlap
// while views differ is harmless.
//
// WAL removal (remove.go; on with Offload unless DisableWALRemoval): the
// sealed segments wholly below the removal horizon are removed, where the
// horizon is the last frame boundary at or below the minimum of the commit
// LSN, the offloaded WAL (this safekeeper's or a peer's backup LSN), every
// known peer's flush LSN and the lowest remote_consistent_lsn pageservers
// reported (directly, or to a peer that published it) within
// FeedbackExpiry. No report: nothing is removed. The horizon is persisted
// before any segment goes.
package safekeeper
