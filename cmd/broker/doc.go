// Command broker runs the broker daemon (plumbing in cmd/internal/daemon): gRPC publish/subscribe of
// safekeeper timeline state on -listen, Prometheus metrics and health on
// -http. Flags fall back to STRATA_BROKER_<FLAG> environment variables.
// SIGTERM or SIGINT stops accepting calls, lets in-flight ones finish (up to
// -drain-timeout) and exits. State is in memory only: safekeepers republish.
package main
