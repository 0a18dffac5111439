// Package lsn holds the LSN type: a 64-bit byte position in a timeline's WAL,
// written X/X in upper-case hex (e.g. 0/16B3748) as Postgres does.
// Invariant: Parse(l.String()) == l for every l.
package lsn
