// Package objstore is Strata's object-store seam (Store) with three
// implementations: Local (a directory on the disk seam, so it also runs in
// the simulator), S3 (aws-sdk-go-v2) and Faulty (a wrapper that injects
// latency, throttling, transient errors before an operation and errors after
// it took effect). Conformance suite: disk/objstore/objstoretest.
//
// Invariants: every returned error wraps exactly one class sentinel; objects
// are written whole (a reader never sees a partial object); List is in
// lexical key order.
package objstore
