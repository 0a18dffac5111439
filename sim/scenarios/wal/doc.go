// Package wal is the `wal` simulation scenario: safekeepers (1, 3 or 5;
// 3 by default), the broker, the shared object store and one or two
// computes whose walproposers write WAL, compete for terms and are
// restarted, under every fault class the simulator offers (crashes with
// torn writes, graceful stops, partitions, one-way cuts, slow links, broken
// connections, disk EIO/ENOSPC, object-store throttling and transient
// errors, clock offsets) plus media corruption: one byte of a control
// file or of committed WAL flipped now and then on a fixed minority of the
// safekeepers (never enough to lose a healthy majority).
//
// Checkers (docs/architecture.md, Invariants, WAL):
//   - one winner per term: every election is reported and a second winner
//     of a term fails the seed;
//   - commit never goes backwards for any proposer;
//   - committed WAL is the same whoever reports it: the checker keeps the
//     committed frames by LSN and any disagreement fails the seed;
//   - no record invented: every committed frame is a record some workload
//     appended, and appears once;
//   - no committed record lost: every record a workload saw committed is at
//     its LSN in the final WAL;
//   - no two acceptors differ at a committed LSN: after healing, every
//     safekeeper's WAL below the final commit LSN is byte-identical;
//   - liveness: after healing, a fresh record commits, every safekeeper
//     catches up (or, if it was corrupted, reports it), and every sealed
//     committed segment is offloaded with exactly the committed bytes;
//   - served WAL is never corrupt: every chunk served to proposer
//     recovery, StreamWal readers and the auditor is whole valid frames of
//     appended records, and committed chunks equal the committed WAL;
//   - corruption is reported: a corrupted safekeeper, restarted at the end,
//     answers DataLoss and counts it exactly when an injected flip is still
//     in its durable state; no other safekeeper ever answers DataLoss.
//
// Planted bugs (see Scenario().Bugs) prove the checkers can fail.
package wal
