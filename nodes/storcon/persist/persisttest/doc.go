// Package persisttest is the conformance suite for persist.Store: every
// implementation (the embedded DiskStore, the PostgreSQL store in
// cmd/internal/storconpg, the Remote store over real HTTP and over the net
// seam) runs Run and must pass all of it. It checks every
// operation, that a multi-row insert is all-or-nothing, that generations
// strictly increase per shard across reopen, that re-attach increments
// exactly the node's shards, splitting marks and split begin/commit/abort,
// and the error classes (not found, exists, conflict, invalid, closed).
//
// It is test support, driven by go test from outside any simulation; its one
// goroutine-spawning test carries a determinism escape comment saying so.
package persisttest
