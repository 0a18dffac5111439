// Package skapi is the safekeeper's API as clients see it: the protobuf
// messages of safekeeper.proto (proto package strata.safekeeper, generated
// code committed; see gen.go and docs/protobuf.md), the full method names,
// the conversions between the wire messages and engine/skproto, small client
// helpers, and the object-store layout of offloaded WAL.
//
// Clients (the compute's walproposer, checkers, a future pageserver) import
// this package and never nodes/safekeeper itself, so no client compiles in
// the server; sim/detlint's TestLayering enforces that (docs/architecture.md,
// Layout). This package may import engine/, clock and net, but no server
// package of any service.
package skapi
