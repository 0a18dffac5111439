// Package objstore is Strata's object-store seam (Store) with three
// implementations and a conformance suite (disk/objstore/objstoretest):
//
//   - Local keeps objects as files on a disk.FS, so it runs on the real disk
//     and, in the simulator, on sim/simdisk. Each key segment is one path
//     element ("d"+escaped segment for directories, "o"+escaped segment for
//     the object), so List reads only the directories a prefix selects.
//     Writes go to a synced temp file that is renamed into place and the
//     directory is synced: whole, durable, crash-atomic. Conditional puts
//     hard-link the temp file into place, which the file system refuses if
//     the name exists, so they are atomic even across processes sharing the
//     directory (the file system must support hard links). Nothing it
//     reports can be undone by a crash: after a failed directory sync the
//     change is visible but not durable, so any answer resting on a
//     directory's entries (found, not found, listed, name taken, already
//     deleted) comes after syncing that directory, unless the instance
//     synced it and changed nothing there since. Temp files a crash strands
//     are removed by SweepTemp, per instance id, at start.
//   - S3 talks to S3 or a compatible service through aws-sdk-go-v2, with an
//     explicit retry policy and every SDK error classified (a 409 by its
//     code: only ConditionalRequestConflict and OperationAborted are
//     transient). Real mode only: the SDK runs its own goroutines and
//     timers. Tested against an in-process fake and against a real S3
//     server in another process (disk/objstore/s3test).
//   - Faulty wraps any Store and injects latency, throttling, transient
//     errors before an operation (nothing happened) and after it (it
//     happened but the caller sees an error), and optionally stale "not
//     found" reads, all drawn from a caller-supplied rng.
//
// Invariants: every returned error wraps exactly one class sentinel
// (ErrNotFound, ErrPreconditionFailed, ErrThrottled, ErrTransient,
// ErrPermanent); objects are written whole (a reader never sees a partial
// object); List is in lexical key order and pages resume after
// NextStartAfter; keys are checked by CheckKey (non-empty, at most
// MaxKeyBytes, no NUL) before any I/O.
package objstore
