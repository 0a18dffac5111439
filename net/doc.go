// Package net is Strata's transport seam: Network (listen and dial by
// address), unary calls and bidirectional streams of byte messages, and
// status codes (Status, Code) that every transport uses for its errors.
//
// It never imports the standard library's net; real transports live in
// subpackages: net/grpcx (gRPC, the data plane) and net/httpx (HTTP/JSON, the
// control plane). The simulator implements Network in memory. The
// conformance suite net/nettest runs against every implementation.
//
// Invariants: every error crossing the seam is a *Status; no message larger
// than MaxMessageBytes is sent; a stream's messages arrive in order.
package net
