// Package objstoretest is the conformance suite every objstore.Store
// implementation must pass unchanged (Local on any disk.FS, S3 against a
// fake or real bucket, and Faulty with faults switched off).
//
// It checks whole-object put/get, ranges, head, prefix listing in lexical
// order with pagination, batch delete, copy, conditional put (IfNoneMatch,
// including a race of concurrent conditional puts of which exactly one may
// win) and that every error wraps exactly one objstore error class.
package objstoretest
