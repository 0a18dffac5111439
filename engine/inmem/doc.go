// Package inmem holds the open in-memory layer of a timeline: the values
// (page images and deltas) ingested from WAL since the last flush, indexed by
// key and LSN, until they are frozen and written to a delta layer file.
//
// The layer is generic over the value type V so that it does not depend on
// how values are encoded; the caller supplies a function that says whether a
// value initialises the page on its own (an image: reconstruction may stop
// there) and how many bytes it holds (for size accounting).
//
// Invariants:
//   - Per key, values are held in strictly increasing LSN order; Put rejects
//     a value at or below the key's newest LSN and any LSN below the layer's
//     start or below the newest LSN the layer has seen (ingest is in LSN
//     order, several keys may share one LSN).
//   - The layer covers the LSN range [Start, End): End is lsn.Max while open
//     and is fixed by Freeze to a value above every held LSN. A frozen layer
//     never changes again, so readers may iterate it without copying.
//   - SizeBytes is the sum of the values' sizes plus a fixed per-entry
//     overhead; it only grows.
package inmem
