// Package walproposer is the WAL half of a compute: it runs the
// engine/skproto Proposer against a set of safekeepers — greets them, wins
// an election, recovers the WAL it lacks from the most advanced acceptor,
// streams new records and tracks the commit LSN — and gives workloads a
// small API: Append(records) → LSN and WaitCommitted(ctx, lsn).
//
// One task per safekeeper owns that connection (dial, greet, send its
// outbox, time out a silent peer); a reader task per connection feeds
// replies into the proposer; a recovery task reads missing WAL. All share
// one clock.Mutex around the step machine, so the code runs unchanged on the
// real clock and in the simulator.
//
// A proposer that meets a higher term is defeated for good, as Postgres'
// walproposer exits: Append and WaitCommitted then fail with
// skproto.ErrDefeated and the owner starts a new WALProposer (a compute
// restart), which wins a new term and recovers the committed WAL. Records
// appended but not committed by a defeated proposer may or may not survive.
//
// Limits: per-safekeeper outbox and in-flight bytes are bounded by the
// proposer's MaxInflightBytes window; the WAL buffer by MaxBufferBytes; WAL
// re-read for a lagging safekeeper by one recovery window of at most
// MaxRecoverBytes at a time, each read under its own CallTimeout.
package walproposer
