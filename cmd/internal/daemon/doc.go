// Package daemon holds the plumbing every Strata daemon (cmd/safekeeper,
// cmd/broker, and later the pageserver) shares: Main (exit codes, -help,
// -version, error printing), flags that fall back to
// STRATA_<DAEMON>_<FLAG> environment variables and name a missing required
// flag by its flag name, log/slog set-up from -log-format and -log-level
// (durations as text), the exclusive lock on a data directory, the HTTP
// side server (/metrics from the node's prometheus registry, /live,
// /ready, optional /debug/pprof), and the SIGTERM/SIGINT shutdown with a
// drain deadline. Version is also what `strata version` prints.
//
// Invariants: a flag given on the command line beats its environment
// variable, which beats the default; a malformed environment value is an
// error (never silently ignored); -help and -version exit 0, a rejected
// command line 2, a failed run 1, and each error is printed once, with one
// "NAME: " prefix; at most one process holds a data directory's lock
// (LockDataDir), and the kernel releases it when that process exits; Serve
// returns only after the drain function returned or its deadline passed,
// and after the HTTP server shut down.
package daemon
