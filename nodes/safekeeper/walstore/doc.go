// Package walstore holds one safekeeper timeline on disk: a control file
// with the acceptor's persistent state and the WAL in fixed-size segment
// files, all through the disk.FS seam.
//
// Layout under the timeline directory:
//
//	safekeeper.control      magic, version, JSON state, crc32c
//	wal/<segno %016X>       sealed (full) segments
//	wal/<segno>.partial     the segment holding the end of the WAL
//
// Segment n holds LSNs [n*SegmentBytes, (n+1)*SegmentBytes), so an LSN's
// file offset is LSN mod SegmentBytes.
//
// Invariants:
//   - The control file is replaced atomically (temp file, sync, rename,
//     directory sync); a torn or bit-flipped one fails its checksum and is
//     reported as ErrCorrupt, never used.
//   - After Open the WAL on disk ends exactly at the flush LSN: bytes beyond
//     the last valid frame are truncated and later segments removed, so no
//     stale frame can ever reappear behind new writes.
//   - Write is append-only at the flush LSN; Truncate is durable on return.
//   - No directory entry is relied on before it is durable: a segment
//     created, sealed or removed, or a control file renamed into place, by a
//     call whose directory sync failed is synced by the next Sync or
//     PersistControl of the same store, and Open syncs the timeline
//     directory and wal/ before using what it finds (an earlier
//     incarnation's sync may have failed).
//   - The flush LSN is found by scanning frames from the persisted commit
//     LSN; if the valid WAL ends below that commit LSN the store refuses to
//     open (ErrCorrupt): committed WAL is never silently lost or served
//     damaged. Reads validate frames too.
//   - WAL removal (RemoveBelow) persists the removal horizon (a frame
//     boundary at or below the commit LSN, Control.HorizonLSN) before it
//     removes the sealed segments wholly below it. The segments below the
//     horizon are the only ones legitimately missing: Open checks the
//     committed WAL from max(start, horizon) and removes leftovers below
//     it; reads below it fail with ErrRemoved. The horizon never moves back.
package walstore
