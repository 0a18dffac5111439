// Command pageserver runs the pageserver daemon (plumbing in
// cmd/internal/daemon): the page service (Neon's page_api.PageService over
// gRPC, with server reflection so grpcurl lists and describes it) on
// -listen; the management API (HTTP/JSON, nodes/pageserver/pageapi's
// routes) together with Prometheus metrics, /live, /ready and, with
// -pprof, /debug/pprof/ on -http; tenant shards and their layer files on
// the OS disk under -data-dir; WAL receivers that follow each attached
// timeline's committed WAL from the safekeepers the broker (-broker) names.
// With -auth-public-key (a PEM file of Ed25519 public keys) every page
// request needs a JWT of scope tenant for its tenant and every management
// request one of scope pageserverapi (admin passes both); /metrics, /live
// and /ready stay open. With -control-plane-api the pageserver re-attaches
// to the storage controller before it loads anything (token from
// STRATA_PAGESERVER_CONTROL_PLANE_TOKEN): it takes the generations the
// controller answers, drops the shards it does not list, and exits 1 if the
// controller stays unreachable (docs/pageserver.md, "Re-attach at
// start-up"). With -s3-bucket (or -remote-dir) the node keeps its layers
// and indexes in that object store, built by cmd/internal/remote exactly as
// the safekeeper's offload target (credentials from
// STRATA_PAGESERVER_S3_ACCESS_KEY and _SECRET_KEY); a tenant attached
// from it serves at once, downloading layers on demand and in the
// background; -max-local-layer-bytes makes the local disk a cache of it
// (layers already in object storage are evicted, least recently used
// first, above that many bytes); -test-remote-failures N makes each store
// operation fail its first N attempts (tests only).
//
// Every flag falls back to an environment variable
// (STRATA_PAGESERVER_<FLAG>, dashes as underscores). It holds an exclusive
// lock on -data-dir (strata.lock) while it runs. /ready fails while the
// tenants load and once shutdown began. SIGTERM or SIGINT stops accepting
// page requests (Unavailable), lets open GetPages streams finish for up to
// -drain-timeout, stops the WAL receivers, flushes every timeline so a
// restart resumes ingest from disk, stops background work and exits.
package main
