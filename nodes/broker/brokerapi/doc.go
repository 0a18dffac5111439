// Package brokerapi is the broker's API as clients see it: the protobuf
// messages of broker.proto (proto package strata.broker, generated code
// committed; see gen.go and docs/protobuf.md), the full method names, and
// Client, a connection-caching client for Publish and Get.
//
// Safekeepers (and later pageservers and the storage controller) import this
// package, never nodes/broker, so no client compiles in the server;
// sim/detlint's TestLayering enforces that (docs/architecture.md, Layout).
package brokerapi
