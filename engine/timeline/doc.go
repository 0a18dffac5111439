// Package timeline holds a tenant's timelines on the disk seam: WAL ingest
// into the in-memory layer, the read path (GetPage, GetPages, RelSize at an
// LSN), flush to L0 delta files, compaction into L1 deltas and image layers,
// garbage collection under a GC cutoff, branching, and crash recovery.
// docs/page-engine.md describes the rules; the invariants are:
//
//   - Durability: disk_consistent_lsn (DCL) advances only after the layer
//     files holding every record at or below it and then the metadata file
//     listing them are durable (metadata is written temp → sync → rename →
//     dir sync). After a crash nothing at or below DCL is lost; the caller
//     re-ingests the WAL above it.
//   - The metadata lists the timeline's layer files exactly. A file not
//     listed is a leftover of a crashed flush, compaction or GC and is
//     removed at Open; a listed file that is missing or damaged, or corrupt
//     metadata, fails Open (never silently ignored).
//   - Layer files are written completely before they are listed and removed
//     only after a durable metadata no longer lists them.
//   - Reads at LSN L return the redo of every record at or below L; reads
//     below the latest GC cutoff fail with ErrBelowGCCutoff; the cutoff never
//     moves backwards and is persisted before the layers it frees are removed.
//   - GC removes a layer only if, at the cutoff and at every child's branch
//     point below it, newer image layers cover its whole key range.
//   - A child timeline reads its ancestor at or below its branch point; its
//     branch LSN is at most the parent's last record LSN and at least the
//     parent's GC cutoff; its directory appears (atomically, by rename) only
//     after those checks passed and its metadata is durable.
//
// Persisted: the metadata file and the layer files. Rebuilt at start-up: the
// layer map, the in-memory layers (empty; refilled by re-ingest), the
// parent/child links.
package timeline
