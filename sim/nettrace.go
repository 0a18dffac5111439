package sim

import (
	"context"

	"github.com/stratadb/strata/net"
)

// tracedNet wraps a node's network endpoint so the content of every message
// a task receives (a unary request in its handler, a unary response, a
// stream message) is hashed into the trace. simnet's OnDeliver covers the
// routing and sizes of deliveries; this covers their bytes, so a change in
// what is serialized changes the hash.
type tracedNet struct {
	w     *World
	inner net.Network
}

func (t tracedNet) received(b []byte) { t.w.event(EvRecv, hashBytes(b), uint64(len(b))) }

func (t tracedNet) Listen(addr string, h net.Handler) (net.Listener, error) {
	return t.inner.Listen(addr, tracedHandler{t, h})
}

func (t tracedNet) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := t.inner.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return tracedConn{t, c}, nil
}

type tracedHandler struct {
	t tracedNet
	h net.Handler
}

func (h tracedHandler) Unary(ctx context.Context, method string, req []byte) ([]byte, error) {
	h.t.received(req)
	return h.h.Unary(ctx, method, req)
}

func (h tracedHandler) Stream(ctx context.Context, method string, s net.ServerStream) error {
	return h.h.Stream(ctx, method, tracedServerStream{h.t, s})
}

// MethodKind passes the inner handler's knowledge through (net.MethodKinder).
func (h tracedHandler) MethodKind(method string) net.Kind {
	if mk, ok := h.h.(net.MethodKinder); ok {
		return mk.MethodKind(method)
	}
	return net.KindUnknown
}

type tracedServerStream struct {
	t tracedNet
	net.ServerStream
}

func (s tracedServerStream) Recv() ([]byte, error) {
	b, err := s.ServerStream.Recv()
	if err == nil {
		s.t.received(b)
	}
	return b, err
}

type tracedConn struct {
	t tracedNet
	net.Conn
}

func (c tracedConn) Call(ctx context.Context, method string, req []byte) ([]byte, error) {
	resp, err := c.Conn.Call(ctx, method, req)
	if err == nil {
		c.t.received(resp)
	}
	return resp, err
}

func (c tracedConn) Stream(ctx context.Context, method string) (net.ClientStream, error) {
	s, err := c.Conn.Stream(ctx, method)
	if err != nil {
		return nil, err
	}
	return tracedClientStream{c.t, s}, nil
}

type tracedClientStream struct {
	t tracedNet
	net.ClientStream
}

func (s tracedClientStream) Recv() ([]byte, error) {
	b, err := s.ClientStream.Recv()
	if err == nil {
		s.t.received(b)
	}
	return b, err
}
