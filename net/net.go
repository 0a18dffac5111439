package net

import (
	"context"
)

// Network is the transport seam: a node listens on an address and serves a
// Handler, or dials an address and makes calls. Messages cross the seam as
// bytes (protobuf or JSON encodings, see Codec helpers in this package), so
// the simulator marshals every message in flight and serialization bugs stay
// visible. Method names are gRPC-style full names ("/pkg.Service/Method").
//
// Real implementations live in subpackages (net/grpcx for gRPC); the
// simulator provides an in-memory one. All must pass net/nettest.
type Network interface {
	// Listen starts serving h on addr. Calls arrive concurrently, each in its
	// own task. The returned Listener stops serving when closed.
	Listen(addr string, h Handler) (Listener, error)
	// Dial connects to addr. A Conn may be used by many tasks at once.
	Dial(ctx context.Context, addr string) (Conn, error)
}

// Listener is a serving address.
type Listener interface {
	// Addr is the address actually bound (useful with port 0).
	Addr() string
	// Close stops accepting new calls and breaks the open ones.
	Close() error
}

// Handler serves calls on a listener. Errors should be *Status values (see
// Errorf); any other error is reported to the caller as Internal.
type Handler interface {
	// Unary serves a request/response call.
	Unary(ctx context.Context, method string, req []byte) ([]byte, error)
	// Stream serves a bidirectional stream until it returns. Returning nil
	// ends the stream cleanly (the client sees io.EOF on Recv).
	Stream(ctx context.Context, method string, s ServerStream) error
}

// Conn is a client connection.
type Conn interface {
	// Call makes a unary call.
	Call(ctx context.Context, method string, req []byte) ([]byte, error)
	// Stream opens a bidirectional stream. Cancelling ctx breaks it.
	Stream(ctx context.Context, method string) (ClientStream, error)
	// Close closes the connection and breaks its calls and streams.
	Close() error
}

// ServerStream is the server's side of a stream.
type ServerStream interface {
	// Send sends one message to the client.
	Send(msg []byte) error
	// Recv receives the next message; io.EOF after the client's CloseSend.
	Recv() ([]byte, error)
}

// ClientStream is the client's side of a stream.
type ClientStream interface {
	// Send sends one message. Once the stream has ended (the handler
	// returned or the stream broke) it returns io.EOF, as gRPC does, and
	// Recv reports how the stream ended.
	Send(msg []byte) error
	// Recv receives the next message; io.EOF when the handler returned nil,
	// or a *Status error when it failed or the stream broke.
	Recv() ([]byte, error)
	// CloseSend tells the server no more messages will be sent.
	CloseSend() error
}

// MaxMessageBytes bounds every message on every transport; larger messages
// are refused with ResourceExhausted.
const MaxMessageBytes = 16 << 20
