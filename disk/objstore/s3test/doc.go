// Package s3test starts a throwaway S3-compatible server for a test, so that
// objstore.S3 and the daemons that offload to S3 are tested against a real
// S3 service in a separate process, not only against the in-process fake
// (gofakes3). The server is versitygw (the Versity S3 Gateway,
// Apache-2.0) with its posix backend, pinned at Version and installed with
// InstallCommand (.ci/run does it): Start runs it on a free port of
// 127.0.0.1 with a fresh root directory under t.TempDir() and stops it when
// the test ends; NewBucket creates an empty bucket for each store a test
// needs. Daemon tests in cmd/ use Endpoint, AccessKey and SecretKey for
// their -s3-* flags.
//
// Finding the binary: the path in $STRATA_VERSITYGW, else versitygw on the
// PATH, else in $GOBIN or $GOPATH/bin (where go install puts it). It must
// be the pinned version (read from the binary's Go build information),
// because the conformance gaps below are those of that version. Without it
// the test is skipped with a message naming InstallCommand — unless the
// environment variable CI is set (to anything but "false" or "0"), in which
// case it fails: CI must never pass by skipping the real-S3 tests.
//
// Known gaps (ConformanceOptions, checked by this package's tests so a
// version that closes one is noticed). The posix backend stores object k as
// the file <root>/<bucket>/k, so
//   - it cannot hold an object at k and another below k+"/" at once: the
//     second put is refused with 409 ObjectParentIsFile or
//     ExistingObjectIsDirectory (which objstore.S3 classifies as permanent,
//     so nothing retries it);
//   - it cleans keys as paths: "x/../y" is stored as "y", "x//y" as "x/y",
//     "/lead" as "lead", and a key ending in "/" with data is refused (400).
//
// Strata's key layout needs neither: in every key it writes the
// directories are fixed words and ids and the object is only the last
// segment ("wal/<tenant>/<timeline>/<segment, 16 hex digits>",
// "tenants/<tenant shard>/timelines/<timeline>/<layer name>-<generation>",
// ".../index_part.json-<generation>", "tenants/<tenant shard>/heatmap-v1.json";
// docs/neon-compat.md, Remote layout), so no object's key is another's
// directory, and no segment is empty, "." or "..".
package s3test
