// Package grpcx is the real gRPC implementation of the net.Network seam,
// used by daemons in real mode (never in the simulator: gRPC's goroutines
// and timers are invisible to the deterministic scheduler).
//
// The server registers no services of its own: every call reaches grpc's
// UnknownServiceHandler, which hands the raw message bytes to the seam's
// net.Handler with the full method name. The one exception is gRPC server
// reflection (Options.Reflection), registered with grpc itself so that
// grpcurl can list and describe the services the handler serves; it
// answers from the descriptors the generated packages registered in
// protoregistry.GlobalFiles. A pass-through codec (forced on
// both sides, never registered globally) moves []byte unchanged, so the wire
// format is exactly what the caller marshalled — protobuf for data-plane
// services, which lets protoc-generated gRPC stubs talk to a seam Handler
// and vice versa.
//
// gRPC's wire format does not say whether a call is unary or a stream. A
// grpcx client says so in the "strata-call-kind" header; for foreign clients
// the server asks the Handler (net.MethodKinder, implemented by net.Mux) and
// otherwise assumes unary.
//
// Invariants: every error returned is a *net.Status (or io.EOF from Recv,
// and from Send once the stream ended); net.Status codes map 1:1 to gRPC
// codes; no message over net.MaxMessageBytes is sent or accepted; keepalive
// parameters are explicit on both sides and compatible (the client never
// pings more often than the server's enforcement policy permits).
package grpcx
