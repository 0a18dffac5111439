// Command safekeeper runs the WAL service daemon (plumbing in
// cmd/internal/daemon): gRPC on -listen, Prometheus
// metrics and health on -http, WAL on the OS disk under -data-dir, optional
// offload to a local-directory object store (-remote-dir), publication to a
// broker (-broker). Every flag falls back to an environment variable
// (STRATA_SAFEKEEPER_<FLAG>, dashes as underscores). SIGTERM or SIGINT stops
// accepting calls, lets in-flight ones finish (up to -drain-timeout),
// persists each timeline and exits.
package main
