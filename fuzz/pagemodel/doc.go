// Package pagemodel is a rapid state-machine test of the page engine
// (engine/timeline) against a reference model that holds, per timeline, the
// list of WAL records ingested and computes any page at any LSN by replaying
// them from scratch.
//
// Actions: ingest records (full-page images, page writes, relation size
// changes and drops, logical messages) at increasing LSNs over a few
// relations and blocks; read pages, batches and relation sizes at any LSN at
// or above the GC cutoff; scan key ranges (Timeline.Scan, with forward
// seeks); read below the cutoff (must be refused); flush;
// compact; GC with an advancing cutoff; branch (and then operate on the
// branch too); and crash the simulated disk (sim/simdisk, with torn unsynced
// writes) and reopen, after which every timeline must still hold everything
// at or below its disk_consistent_lsn and the test re-ingests the WAL above
// it, as a pageserver would from the safekeepers.
//
// Invariants checked: every read equals the model; reads below the cutoff
// and branches below it are refused; disk_consistent_lsn never goes
// backwards across a crash; the GC cutoff survives a crash.
//
// The machine runs its operations one at a time. Interleavings (readers
// racing flush, compaction, GC and branching, each edit of a layer set
// applied by the timeline's one writer) are checked against a model by the
// simulator tests in engine/timeline (race_test.go).
package pagemodel
