// Package timeline holds a tenant's timelines on the disk seam: WAL ingest
// into the in-memory layer, the read path (GetPage, GetPages, RelSize and
// range scans at an LSN), flush to L0 delta files, compaction into L1
// deltas and image layers, garbage collection under a GC cutoff,
// branching, deletion, and crash recovery.
// docs/page-engine.md describes the rules; the invariants are:
//
//   - Durability: disk_consistent_lsn (DCL) advances only after the layer
//     files holding every record at or below it and then the metadata file
//     listing them are durable (metadata is written temp → sync → rename →
//     dir sync). After a crash nothing at or below DCL is lost; the caller
//     re-ingests the WAL above it. DCL and the GC cutoff never move back.
//   - The metadata lists the timeline's layer files exactly. A file not
//     listed is a leftover of a crashed flush, compaction or GC and is
//     removed at Open; a listed file that is missing or damaged, or corrupt
//     metadata, fails Open (never silently ignored), unless the tenant's
//     layer source holds the layer: then it is remote (a damaged file is
//     removed first) and downloaded on use. Open syncs every
//     directory it loads from, so nothing it trusts can be undone by a
//     crash (an earlier incarnation's directory sync may have failed).
//   - Layer files are written completely before they are listed and removed
//     only after a durable metadata no longer lists them and no reader
//     holds them.
//   - Reads at LSN L return the redo of every record at or below L; reads
//     below the GC cutoff of the version they pinned fail with
//     ErrBelowGCCutoff; the cutoff is persisted before the layers it frees
//     are removed.
//   - GC removes a layer only if, at the cutoff and at every child's branch
//     point below it, newer image layers cover its whole key range.
//   - A timeline is deleted by renaming its directory to a deleting name
//     durably before anything in it is removed (Open removes such
//     directories), and never while it has children or a branch point
//     reserved.
//   - A child timeline reads its ancestor at or below its branch point; its
//     branch LSN is at most the parent's last record LSN and at least the
//     parent's GC cutoff; its directory appears (atomically, by rename) only
//     after those checks passed and its metadata is durable.
//
// # Versions and edits
//
// A timeline's layer set has one owner, in the shape of pebble's
// Version/VersionEdit. A version (version.go) is an immutable snapshot: the
// layer map (historic layer files, frozen in-memory layers, the open layer),
// the file names the metadata lists, DCL, the GC cutoff and the branch
// points of the children (which GC keeps readable). Only the open layer
// changes inside a version, and only by growing in LSN order under ingest.
//
// Every change of the layer set is a versionEdit that says what changes,
// never a whole new set: freeze (the open layer joins the frozen ones),
// reopen, flush (the oldest frozen layer is replaced by its L0 file; DCL
// advances), dcl, compact (L0 inputs replaced by L1 outputs), images, cutoff
// and gc (GC raises the cutoff, then removes layers), branch and unbranch
// (branch point reservation). Edits are applied by Timeline.apply, one at a
// time per timeline: it takes the writer lock, rebases the edit onto the
// current version by the rules of its kind, writes the metadata if the edit
// changes what it holds, installs the new version and releases the old.
// Rebasing, not overwriting: DCL and the cutoff only go up (max of current
// and edit), so a GC computed beside a flush cannot take the flush's DCL or
// L0 back; a compaction skips inputs a GC removed since its base (images at
// or below the cutoff cover the outputs' copy of them); a GC removes only
// layers still present and still removable in the current version, so never
// one added since its base nor one a branch point reserved since needs; a
// branch point below the current cutoff is refused; a flush whose frozen
// layer is no longer the oldest is refused with ErrConflict. After every
// edit the layer map's Check runs (when invariants are enabled). A new
// kind adds its fields to versionEdit and a case with its rebase rule in
// Timeline.next. Downloads and evictions are not edits: they change where
// a layer's file is, not the layer set (see "Layer residency").
//
// Who applies: a clock.Mutex-guarded apply rather than a writer task. The
// edit's caller must learn its outcome before it returns (Flush promises a
// durable DCL), so a writer task would need a request and a reply per edit,
// a bounded queue and a lifecycle tied to the tenant's, for the same
// serialization. clock.Mutex is FIFO (no writer starves), may be held
// across the metadata write, and every wait on it is visible to the
// simulator. Flush, Compact and GC each also run one at a time per timeline
// (flushMu, compactMu, gcMu): two flushes would write the same frozen layer
// and two compactions merge the same L0s. Ingest takes only the timeline's
// short mutex, which a freeze also takes, so a record never lands in a
// layer half frozen.
//
// Refcounts and deletion: the timeline's current pointer holds a reference
// to its version, and so does every read for its whole run (GetPage and
// friends pin the versions of the timeline and of its ancestors; compaction
// pins the version it reads from). Each layer file counts the versions that
// hold it. When an installed edit removes a file it becomes obsolete; when
// the last version holding it is released, the file is closed and, if
// obsolete, deleted (by whoever released last; a failed delete is logged and
// the next Open removes the file). So a read never finds a layer closed
// under it, and there is no retry on layer.ErrClosed.
//
// Open files: a layer file's reader lives in an open-file cache
// (engine/layercache; Options.LayerCache, shared node-wide by the
// pageserver, else one of the tenant's own with
// layercache.DefaultMaxOpenFiles). A layer stays readable for as long as a
// version holds it, but its reader may be closed, least recently used
// first, once more files are open than the cache's limit; every use of a
// reader pins it (acquire/release around each Collect, key listing, seek
// and compaction pass), so none is closed under a read. A reopen checks the
// file again (the layer package's header and metadata checksums) and
// requires the header the first open read (else ErrCorrupt). Closing a
// layer file for good (its last version released, a failed edit's new
// files) removes it from the cache before the file is deleted.
//
// Layer residency (residency.go): with Options.Source (the pageserver's
// object storage) a layer the metadata lists may have no local file: it
// is remote, known in the layer map by its name like any other, and its
// first use (a read, a compaction, Timeline.Download) downloads it. The
// rules:
//
//   - A layer file is only ever read at its own name once it is complete
//     and checked: a download goes to a temporary name, is synced, opened
//     and checked (the layer format's header and metadata checksums, the
//     name, the summary of an earlier open, the source's size) and only
//     then renamed into place; Open removes a temporary file a crash left.
//   - One download per layer at a time: a per-layer lock (fetchMu) is held
//     across the download, so concurrent readers wait for the one under
//     way and find the file resident.
//   - Evict removes a local file only if the source holds the layer
//     durably (LayerSource.Has: the pageserver's newest uploaded index
//     names it), only while no read holds or is opening its reader
//     (layercache.Handle.CloseIfIdle, called with fetchMu held; every open
//     of such a layer takes fetchMu, so none starts until the file is
//     gone), and never one an edit removed (it is deleted anyway).
//   - Tenant.ResidentBytes counts the local files of the layers the
//     versions hold: up on a write or download, down on an eviction or
//     when the layer is dropped.
//
// Versions are not edited by residency: a layer is the same layer map
// entry whether its file is local or not, so evictions and downloads never
// conflict with flush, compaction or GC.
//
// Observing edits and installing fetched state (observe.go): with
// Options.OnEdit set, every persisted edit is reported (kind, layers added
// and removed, the state after it) once its metadata is durable and before
// it is installed, so before any file it removes can be deleted; the
// pageserver's upload queue hooks here. Stage and Install put a timeline
// whose layer files were fetched elsewhere (object storage) in place of the
// local one by renames, while the tenant is not open (InstallPartial: with
// some files left remote); ReadState reads a
// timeline's persisted state without opening it.
//
// Persisted: the metadata file and the layer files. Rebuilt at start-up: the
// layer map, the in-memory layers (empty; refilled by re-ingest), the
// parent/child links and branch points.
//
// Planted bugs (Options.Bugs, tests only): DeleteReplacedEarly deletes a
// replaced layer file at once instead of when its last reader lets go
// (TestReadersRaceCatchesEarlyDelete).
package timeline
