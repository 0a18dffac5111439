// Package pagecheck is the page checker the scenarios that read pages
// share (pageserver, split): a History of what a workload was acknowledged
// and answered, and a Model built from the committed WAL read back at the
// end, against which every answer is judged.
//
// Invariants it checks (docs/architecture.md, Invariants, Pages):
//   - a page answered at LSN L equals the redo of every committed record
//     at or below L for its block; a block no committed record wrote by L
//     reads as not found;
//   - a refusal is only ever "below the GC cutoff" (and never after
//     healing); a probe sent on purpose to a shard that does not own the
//     block is refused naming the owner, never answered.
//
// Which records are committed is decided by the WAL the safekeepers hold
// at the end, not by the acknowledgements the workload saw: an append
// whose acknowledgement was lost is resolved, never skipped. Below what
// the safekeepers removed, the committed WAL is read from their offloaded
// segments (WAL.Store, offload.go); History.CheckAcked then requires every
// acknowledged commit at a record's end of it.
//
// For scenarios under the storage controller it also has the compute's
// page Reader (the rich page client, its map following notify-attach;
// reader.go) and an Operator (controller calls with retries, tenant
// set-up, the pageservers' timeline and location listings; control.go),
// the controller's simulator timings and a lost disk (ControllerConfig,
// WipeDisk; cluster.go).
package pagecheck
