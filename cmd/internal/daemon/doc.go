// Package daemon holds the plumbing every Strata daemon (cmd/safekeeper,
// cmd/broker) shares: flags that fall back to STRATA_<DAEMON>_<FLAG>
// environment variables, log/slog set-up from -log-format and -log-level,
// the HTTP side server (/metrics from the node's prometheus registry, /live,
// /ready, optional /debug/pprof), and the SIGTERM/SIGINT shutdown with a
// drain deadline.
//
// Invariants: a flag given on the command line beats its environment
// variable, which beats the default; a malformed environment value is an
// error (never silently ignored); Serve returns only after the drain
// function returned or its deadline passed, and after the HTTP server shut
// down.
package daemon
