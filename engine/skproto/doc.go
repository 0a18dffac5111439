// Package skproto holds the safekeeper consensus protocol as two pure step
// machines: the Acceptor (one per safekeeper timeline) and the Proposer (the
// compute's walproposer). Messages go in; persistent-state changes, WAL writes
// and messages come out. Nothing here does I/O, blocks or reads the clock:
// the shells in nodes/safekeeper and nodes/compute apply each Ready in order
// (truncate WAL durably, write and sync WAL, persist state, then send).
//
// The protocol follows Neon's (docs/neon-compat.md, Safekeeper protocol):
//
//   - A proposer greets a quorum, picks term = max(acceptor terms)+1 and asks
//     for votes. An acceptor votes only for a term greater than its own and
//     persists that term before the vote leaves.
//   - With a majority of votes the proposer takes the most advanced voter
//     (highest last-log term, then flush LSN) as donor, adopts its term
//     history up to its flush LSN and appends (term, donor flush).
//   - ProposerElected tells each acceptor where its WAL and the proposer's
//     agree (the last common point of the two term histories); the acceptor
//     truncates there — never below its commit LSN — and adopts the history.
//   - AppendRequests stream WAL; an LSN is committed once a majority of
//     acceptors elected in the current term have flushed it, and not before a
//     majority has reached the donor's flush LSN (the start of this term).
//
// Invariants (checked by the tests and by the wal simulation scenario): at
// most one proposer wins a term; acceptors never differ at a committed LSN;
// commit LSN never decreases; committed WAL is never truncated.
//
// WAL travels as frames (see frame.go): an 8-byte header with the payload
// length and a crc32c, then the payload. Every flush, commit and truncation
// point is a frame boundary, which is what lets a safekeeper find the end of
// its WAL after a crash by scanning frames.
package skproto
