package net

import (
	"context"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"
)

// Kind says how a method is called: as a unary call or as a stream.
type Kind uint8

const (
	// KindUnknown means the method is not served.
	KindUnknown Kind = iota
	KindUnary
	KindStream
)

func (k Kind) String() string {
	switch k {
	case KindUnary:
		return "unary"
	case KindStream:
		return "stream"
	}
	return "unknown"
}

// MethodKinder is implemented by handlers that know each method's kind (Mux
// does). Transports whose wire format does not say whether a call is unary
// (gRPC, when the caller is a foreign generated stub) ask it to dispatch.
type MethodKinder interface {
	MethodKind(method string) Kind
}

// Mux is a Handler that routes full method names ("/pkg.Service/Method") to
// typed handlers registered with HandleUnary, HandleUnaryJSON, HandleStream
// and HandleStreamProto. Calls to a method that is not registered, or that is
// registered with the other kind, fail with Unimplemented.
//
// Registration normally happens before Listen; Mux is nevertheless safe for
// concurrent registration and serving. Registering a name twice panics: it is
// a programming error that would otherwise silently shadow a handler.
type Mux struct {
	mu      sync.RWMutex
	unary   map[string]func(ctx context.Context, req []byte) ([]byte, error)
	streams map[string]func(ctx context.Context, s ServerStream) error
}

// NewMux returns an empty Mux.
func NewMux() *Mux {
	return &Mux{
		unary:   map[string]func(context.Context, []byte) ([]byte, error){},
		streams: map[string]func(context.Context, ServerStream) error{},
	}
}

func (m *Mux) register(method string, u func(context.Context, []byte) ([]byte, error), s func(context.Context, ServerStream) error) {
	if !validMethod(method) {
		panic("net: invalid method name " + method + `: want "/pkg.Service/Method"`)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.unary[method]; ok {
		panic("net: method registered twice: " + method)
	}
	if _, ok := m.streams[method]; ok {
		panic("net: method registered twice: " + method)
	}
	if u != nil {
		m.unary[method] = u
	} else {
		m.streams[method] = s
	}
}

// validMethod checks the gRPC full-name shape "/service/method" with both
// parts non-empty, so a typo fails at registration rather than as a
// mysterious Unimplemented at run time.
func validMethod(method string) bool {
	if len(method) < 4 || method[0] != '/' {
		return false
	}
	slash := -1
	for i := 1; i < len(method); i++ {
		if method[i] == '/' {
			if slash >= 0 {
				return false
			}
			slash = i
		}
	}
	return slash > 1 && slash < len(method)-1
}

// Methods lists the registered method names in sorted order.
func (m *Mux) Methods() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.unary)+len(m.streams))
	for k := range m.unary {
		out = append(out, k)
	}
	for k := range m.streams {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// MethodKind implements MethodKinder.
func (m *Mux) MethodKind(method string) Kind {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.unary[method]; ok {
		return KindUnary
	}
	if _, ok := m.streams[method]; ok {
		return KindStream
	}
	return KindUnknown
}

// Unary implements Handler.
func (m *Mux) Unary(ctx context.Context, method string, req []byte) ([]byte, error) {
	m.mu.RLock()
	h := m.unary[method]
	m.mu.RUnlock()
	if h == nil {
		return nil, Errorf(Unimplemented, "unary method %s not served", method)
	}
	if len(req) > MaxMessageBytes {
		return nil, Errorf(ResourceExhausted, "%s: request is %d bytes, limit %d", method, len(req), MaxMessageBytes)
	}
	return h(ctx, req)
}

// Stream implements Handler.
func (m *Mux) Stream(ctx context.Context, method string, s ServerStream) error {
	m.mu.RLock()
	h := m.streams[method]
	m.mu.RUnlock()
	if h == nil {
		return Errorf(Unimplemented, "stream method %s not served", method)
	}
	return h(ctx, s)
}

// HandleUnary registers a unary protobuf method. Req and Resp are generated
// message pointer types. Undecodable requests are refused with
// InvalidArgument before fn runs; fn's errors should be *Status values.
func HandleUnary[Req, Resp proto.Message](m *Mux, method string, fn func(ctx context.Context, req Req) (Resp, error)) {
	m.register(method, func(ctx context.Context, b []byte) ([]byte, error) {
		req, err := UnmarshalProto[Req](b)
		if err != nil {
			return nil, err
		}
		resp, err := fn(ctx, req)
		if err != nil {
			return nil, err
		}
		return MarshalProto(resp)
	}, nil)
}

// HandleUnaryBytes registers a unary method working on raw bytes, for
// messages that are neither protobuf nor JSON (tests, opaque payloads).
func HandleUnaryBytes(m *Mux, method string, fn func(ctx context.Context, req []byte) ([]byte, error)) {
	m.register(method, func(ctx context.Context, b []byte) ([]byte, error) {
		resp, err := fn(ctx, b)
		if err == nil && len(resp) > MaxMessageBytes {
			return nil, Errorf(ResourceExhausted, "%s: response is %d bytes, limit %d", method, len(resp), MaxMessageBytes)
		}
		return resp, err
	}, nil)
}

// HandleUnaryJSON registers a unary method whose messages are JSON-encoded
// Go values (control-plane messages). Unknown fields are refused.
func HandleUnaryJSON[Req, Resp any](m *Mux, method string, fn func(ctx context.Context, req Req) (Resp, error)) {
	m.register(method, func(ctx context.Context, b []byte) ([]byte, error) {
		req, err := UnmarshalJSON[Req](b)
		if err != nil {
			return nil, err
		}
		resp, err := fn(ctx, req)
		if err != nil {
			return nil, err
		}
		return MarshalJSON(resp)
	}, nil)
}

// HandleStream registers a stream method working on raw bytes.
func HandleStream(m *Mux, method string, fn func(ctx context.Context, s ServerStream) error) {
	m.register(method, nil, fn)
}

// HandleStreamProto registers a stream method whose messages are protobuf:
// the handler receives In messages and sends Out messages.
func HandleStreamProto[In, Out proto.Message](m *Mux, method string, fn func(ctx context.Context, s *ServerStreamOf[In, Out]) error) {
	m.register(method, nil, func(ctx context.Context, s ServerStream) error {
		return fn(ctx, &ServerStreamOf[In, Out]{Raw: s})
	})
}

// ServerStreamOf is a typed view of a ServerStream.
type ServerStreamOf[In, Out proto.Message] struct {
	Raw ServerStream
}

// Send encodes and sends one message.
func (s *ServerStreamOf[In, Out]) Send(m Out) error {
	b, err := MarshalProto(m)
	if err != nil {
		return err
	}
	return s.Raw.Send(b)
}

// Recv receives and decodes the next message; io.EOF after CloseSend. A
// message that does not decode is InvalidArgument.
func (s *ServerStreamOf[In, Out]) Recv() (In, error) {
	b, err := s.Raw.Recv()
	if err != nil {
		var zero In
		return zero, err
	}
	return UnmarshalProto[In](b)
}
