// Package objstoretest is the conformance suite every objstore.Store
// implementation must pass unchanged (Local on any disk.FS, S3 against a
// fake or real bucket, and Faulty with faults switched off).
//
// It checks whole-object put/get, odd keys, ranges, head, prefix listing in
// lexical order with pagination, batch delete, copy, conditional put
// (IfNoneMatch, including a race of concurrent conditional puts of which
// exactly one may win) and that every error wraps exactly one objstore
// error class.
//
// Two cases go beyond what Strata's own keys need, and a store that cannot
// pass them declares it with a named capability in Options, whose reason
// the suite prints as the case's skip message: KeyBelowObject (objects at
// "a" and "a/b" at once; Options.NoKeyBelowObject) and DotOrEmptySegments
// (keys such as "x/../y" or "x//y" kept verbatim;
// Options.NoDotOrEmptySegments). Local, the in-process fake and the
// simulator's store pass both; the real S3 server of the tests
// (disk/objstore/s3test) declares both gaps.
package objstoretest
