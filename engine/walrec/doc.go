// Package walrec holds Strata's WAL record format and redo: the five record
// kinds a compute writes (full page image, page write, relation size change,
// relation drop, logical message), their framed binary encoding
// (docs/wal-records.md), the per-key Value model that layers store, and the
// pure Redo function that rebuilds a page from a base image and deltas.
//
// Invariants:
//   - Decode never panics and never allocates more than MaxRecordSize for
//     one record; every malformed input yields an error that is
//     ErrCorrupt or ErrTruncated.
//   - Decode(Encode(r)) == r for every r that passes Validate.
//   - Redo is a pure, deterministic function of its arguments and never
//     modifies them.
//   - Decompose(r) lists every key r changes, in key order.
package walrec
