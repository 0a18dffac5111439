// Package disk is Strata's file-system seam: the FS and File interfaces,
// their crash contract, and the real OS implementation (Dir).
//
// Services never call package os; they receive an FS. The simulator supplies
// an in-memory FS (sim/simdisk) that implements the same crash contract,
// drops unsynced data on crash and injects faults. Every implementation must
// pass the conformance suite in disk/disktest.
//
// # Names
//
// Names are slash-separated paths relative to the FS root, as io/fs defines
// them (fs.ValidPath): no leading slash, no "..", "." or empty elements; "."
// alone names the root. Anything else fails with ErrInvalidName (which also
// matches fs.ErrInvalid) before any device access, so a name can never escape
// the root.
//
// # Crash contract
//
// Power loss (or a simulated crash) keeps exactly what was made durable:
//
//   - File data is durable only after File.Sync returns nil. An unsynced
//     write may be lost entirely, or torn at 512-byte sector granularity:
//     after the crash each sector it touched holds either its old durable
//     content or its new content, and bytes the write did not touch keep
//     their durable value. Synced bytes are never torn.
//   - Truncate (and Create of an existing file, which truncates it) is a
//     write: durable only after Sync.
//   - A directory entry change (Create of a new file, MkdirAll of a new
//     directory, Rename, Link, Remove) is durable only after SyncDir on the
//     directory holding the entry; a Rename across directories needs both
//     synced. Until then a crash may undo it, or keep it. MkdirAllDurable
//     and WriteFileAtomic do the syncing for the two common cases.
//   - Rename is atomic: after a crash the target names the old or the new
//     file, never a mix of both.
//   - A failed SyncDir (ErrIO) leaves the directory's entry changes visible
//     but still undoable by a crash, and they stay so after the process
//     exits. Whoever later relies on that directory's entries (a retry that
//     finds its file already there, the next process reading what it finds
//     at start-up) must SyncDir it first, or a crash takes back what it
//     acted on. MkdirAllDurable and WriteFileAtomic are safe to retry: they
//     sync unconditionally.
//   - A failed Sync (ErrIO) leaves the file's unsynced writes in an unknown
//     state: later Syncs may report success without having written them
//     (Linux drops or cleans the dirty pages). Treat it as fatal for the
//     file: reopen and recover from durable state, or restart.
//
// # Errors
//
// Every error wraps one class callers test with errors.Is: fs.ErrNotExist,
// fs.ErrExist, fs.ErrPermission, fs.ErrInvalid (bad name or argument),
// ErrNoSpace, ErrIO, ErrClosed, or ErrCrashed (simulator: the caller's node
// incarnation crashed). File.ReadAt returns io.EOF when it reads past the
// end, like io.ReaderAt.
package disk
