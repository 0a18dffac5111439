// Package remote builds a daemon's object store (disk/objstore) from its
// flags: either a local directory (-remote-dir, for development and tests)
// or an S3 bucket (-s3-bucket and the other -s3-* flags, production).
// Every daemon that offloads or reads remote data (cmd/safekeeper
// today, a pageserver later) registers the same flags with Config.Register
// and opens the store with Open.
//
// Invariants: at most one kind of store is configured (-remote-dir and
// -s3-bucket are mutually exclusive, and no -s3-* setting is accepted
// without -s3-bucket); credentials are never logged nor shown in -help (they
// come from -s3-access-key/-s3-secret-key, preferably through their
// environment variables, or from the AWS SDK's default chain when both are
// empty); a non-empty S3 prefix always ends in "/", so the daemon's keys
// sit below it as in a directory; an S3 store whose bucket answers a
// permanent error at start-up (missing bucket, denied credentials) is
// refused then, not at the first upload.
package remote
