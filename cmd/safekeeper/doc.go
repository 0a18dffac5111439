// Command safekeeper runs the WAL service daemon (plumbing in
// cmd/internal/daemon): gRPC on -listen, Prometheus metrics and health on
// -http, WAL on the OS disk under -data-dir, optional offload of sealed
// segments to an S3 bucket (-s3-bucket and the other -s3-* flags) or, for
// development, a local directory (-remote-dir) (both built by
// cmd/internal/remote), publication to a broker (-broker). Every flag falls
// back to an environment variable (STRATA_SAFEKEEPER_<FLAG>, dashes as
// underscores); S3 credentials (-s3-access-key, -s3-secret-key) are best
// given that way. It holds an exclusive lock on -data-dir (strata.lock) while
// it runs, so a second safekeeper on the same directory exits with an error
// naming the holder. SIGTERM or SIGINT stops accepting calls, lets in-flight
// ones finish (up to -drain-timeout), persists each timeline and exits.
package main
