// Package net is Strata's transport seam: Network (listen and dial by
// address), unary calls and bidirectional streams of byte messages, and
// status codes (Status, Code) that every transport uses for its errors.
//
// It never imports the standard library's net; real transports live in
// subpackages: net/grpcx (gRPC, the data plane) and net/httpx (HTTP/JSON, the
// control plane). The simulator implements Network in memory. The
// conformance suite net/nettest runs against every implementation.
//
// Services do not marshal by hand: a Mux routes full method names
// ("/pkg.Service/Method") to typed handlers (HandleUnary, HandleStreamProto
// for protobuf; HandleUnaryJSON for control-plane JSON; HandleUnaryBytes and
// HandleStream for raw bytes), and clients use CallProto, CallJSON and
// StreamProto. Unknown methods are Unimplemented, undecodable messages
// InvalidArgument, oversized ones ResourceExhausted. See docs/protobuf.md
// for where .proto files live and how they are generated.
//
// A call's request headers travel as Metadata: the client attaches them to
// the context with WithMetadata, the handler reads them with
// IncomingMetadata; every transport carries them unchanged and refuses ones
// that break the rules in Metadata's doc (InvalidArgument, nothing sent).
//
// Invariants: every error crossing the seam is a *Status; no message larger
// than MaxMessageBytes is sent; a stream's messages arrive in order.
package net
