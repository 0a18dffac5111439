// Command storcon runs the storage controller daemon (the service is
// nodes/storcon; the plumbing cmd/internal/daemon): it decides which
// pageserver holds each tenant shard, hands out generations, reconciles
// pageservers towards its intent and tells compute where shards live.
//
// Everything is served on one HTTP address, -listen (default
// 127.0.0.1:1234): the controller's API (nodes/storcon/storconapi's
// routes), /metrics, /status, /live, /ready and, with -pprof,
// /debug/pprof/. /ready answers 200 only once start-up reconcile finished,
// and 503 again once shutdown began.
//
// Persistence is the embedded crash-safe store in -data-dir (default
// ./storcon-data; the daemon holds an exclusive lock on it, strata.lock)
// unless -database-url names a PostgreSQL database, whose embedded schema
// migrations run at start.
//
// Secrets come from the environment: STRATA_STORCON_DATABASE_URL (or
// STORCON_DATABASE_URL), STRATA_STORCON_PAGESERVER_JWT_TOKEN (or
// PAGESERVER_JWT_TOKEN: the JWT of scope pageserverapi sent to
// pageservers) and STRATA_STORCON_COMPUTE_HOOK_TOKEN (or
// CONTROL_PLANE_JWT_TOKEN: the bearer token sent to the compute hook). The
// flags of the same names work too but put the secret on the command line,
// where other users see it. Every other flag falls back to
// STRATA_STORCON_<FLAG> (dashes as underscores).
//
// With -public-key (comma-separated PEM files of Ed25519 public keys) every
// route but /metrics, /status, /live and /ready needs a JWT whose scope is
// the route family's (admin passes all). With -compute-hook-url the
// controller PUTs notify-attach requests to <url>/notify-attach.
//
// SIGTERM or SIGINT turns /ready to 503, stops the service's tasks (in
// -drain-timeout plus a bounded stop), closes the store and exits 0.
// Exit codes: 0 clean stop, -help or -version; 2 a rejected command line
// or environment; 1 a failed start or run.
package main
