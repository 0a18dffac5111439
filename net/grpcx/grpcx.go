package grpcx

import (
	"context"
	"errors"
	"io"
	stdnet "net"
	"strings"
	"sync"
	"time"

	"github.com/stratadb/strata/net"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
)

// kindHeader carries the call kind from grpcx clients ("unary" or
// "stream"); see the package doc.
const kindHeader = "strata-call-kind"

// Options configure a Network. The zero value is usable: each zero field
// takes the default documented beside it.
type Options struct {
	// KeepaliveTime is how long a connection may be idle before its side
	// pings the peer. Default 30s. The server permits client pings at half
	// this interval, so two grpcx peers with the same setting never trip
	// the "too many pings" policy.
	KeepaliveTime time.Duration
	// KeepaliveTimeout is how long to wait for a ping's answer before the
	// connection is considered dead and its calls fail Unavailable. Default 10s.
	KeepaliveTimeout time.Duration
	// MaxConcurrentStreams bounds calls in flight per server connection.
	// Default 1024.
	MaxConcurrentStreams uint32
	// Reflection, if not empty, makes servers answer gRPC server
	// reflection (grpc.reflection.v1 and v1alpha) listing these services
	// by full name ("page_api.PageService") besides the reflection
	// service itself, so grpcurl can list and describe them. Their
	// descriptors come from the generated code's registration in
	// protoregistry.GlobalFiles: the program must import the generated
	// package. Listen refuses a name that is not registered there.
	Reflection []string
}

func (o Options) withDefaults() Options {
	if o.KeepaliveTime <= 0 {
		o.KeepaliveTime = 30 * time.Second
	}
	if o.KeepaliveTimeout <= 0 {
		o.KeepaliveTimeout = 10 * time.Second
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 1024
	}
	return o
}

// Network is net.Network over gRPC on TCP.
type Network struct {
	opts Options
}

var _ net.Network = (*Network)(nil)

// New returns a gRPC Network.
func New(opts Options) *Network { return &Network{opts: opts.withDefaults()} }

// Listen serves h on addr ("host:port"; port 0 picks a free port).
func (n *Network) Listen(addr string, h net.Handler) (net.Listener, error) {
	if _, _, err := stdnet.SplitHostPort(addr); err != nil {
		return nil, net.Errorf(net.InvalidArgument, "grpcx: listen address %q: %v", addr, err)
	}
	if err := checkReflection(n.opts.Reflection); err != nil {
		return nil, err
	}
	lis, err := stdnet.Listen("tcp", addr)
	if err != nil {
		return nil, net.Errorf(net.Unavailable, "grpcx: listen %s: %v", addr, err)
	}
	return n.Serve(lis, h), nil
}

// Serve serves h on an already-open listener (tests may pass an in-memory
// one). The returned Listener owns lis.
func (n *Network) Serve(lis stdnet.Listener, h net.Handler) *Listener {
	o := n.opts
	srv := grpc.NewServer(
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
			return serve(h, ss)
		}),
		grpc.ForceServerCodec(rawCodec{}),
		grpc.MaxRecvMsgSize(net.MaxMessageBytes),
		grpc.MaxSendMsgSize(net.MaxMessageBytes),
		grpc.MaxConcurrentStreams(o.MaxConcurrentStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: o.KeepaliveTime, Timeout: o.KeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: o.KeepaliveTime / 2, PermitWithoutStream: true}),
	)
	if len(o.Reflection) > 0 {
		registerReflection(srv, o.Reflection)
	}
	l := &Listener{srv: srv, addr: lis.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		// Serve returns when Stop/GracefulStop closes lis; any other error
		// (accept failing) also ends serving, and callers see Unavailable.
		_ = srv.Serve(lis)
	}()
	return l
}

// Listener is a serving gRPC server.
type Listener struct {
	srv  *grpc.Server
	addr string
	done chan struct{}
	once sync.Once
}

// Addr returns the bound "host:port".
func (l *Listener) Addr() string { return l.addr }

// Close stops serving at once: the listening socket closes and open calls
// break (clients see Unavailable).
func (l *Listener) Close() error {
	l.once.Do(l.srv.Stop)
	<-l.done
	return nil
}

// Drain stops accepting new calls and waits for the open ones to finish or
// for ctx to end, whichever is first; then it closes like Close. Daemons use
// it for graceful shutdown.
func (l *Listener) Drain(ctx context.Context) error {
	finished := make(chan struct{})
	go func() {
		l.srv.GracefulStop()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
	}
	return l.Close()
}

// serve dispatches one incoming gRPC call to the seam handler.
func serve(h net.Handler, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return toGRPC(net.Errorf(net.Internal, "grpcx: no method name on stream"))
	}
	ctx := net.NewIncomingContext(ss.Context(), incomingMetadata(ss.Context()))
	if callKind(ctx, h, method) == net.KindStream {
		return toGRPC(h.Stream(ctx, method, &serverStream{ss: ss}))
	}
	var req []byte
	if err := ss.RecvMsg(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return toGRPC(net.Errorf(net.InvalidArgument, "grpcx: unary call %s without a request", method))
		}
		return toGRPC(fromGRPC(err))
	}
	resp, err := h.Unary(ctx, method, req)
	if err != nil {
		return toGRPC(err)
	}
	if len(resp) > net.MaxMessageBytes {
		return toGRPC(net.Errorf(net.ResourceExhausted, "grpcx: %s: response is %d bytes, limit %d", method, len(resp), net.MaxMessageBytes))
	}
	if resp == nil {
		resp = []byte{}
	}
	return ss.SendMsg(resp)
}

// incomingMetadata keeps the caller's own headers: gRPC's transport headers
// (pseudo-headers, content-type, user-agent, te, grpc-*) and the adapter's
// strata-* headers are not the caller's metadata. A key sent several times
// keeps its first value, as the seam has one value per key.
func incomingMetadata(ctx context.Context) net.Metadata {
	md := net.Metadata{}
	in, _ := metadata.FromIncomingContext(ctx)
	for k, vs := range in { //strata:nondeterministic building a map; order cannot matter
		switch {
		case len(vs) == 0, strings.HasPrefix(k, ":"), strings.HasPrefix(k, "grpc-"), strings.HasPrefix(k, "strata-"),
			k == "content-type", k == "user-agent", k == "te":
			continue
		}
		md[k] = vs[0]
	}
	return md
}

// withOutgoing validates the seam metadata ctx carries and copies it into
// gRPC's outgoing metadata, in sorted key order.
func withOutgoing(ctx context.Context, kind string) (context.Context, error) {
	md := net.OutgoingMetadata(ctx)
	if err := md.Validate(); err != nil {
		return nil, err
	}
	kv := make([]string, 0, 2+2*len(md))
	kv = append(kv, kindHeader, kind)
	for _, k := range md.Keys() {
		kv = append(kv, k, md[k])
	}
	return metadata.AppendToOutgoingContext(ctx, kv...), nil
}

func callKind(ctx context.Context, h net.Handler, method string) net.Kind {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(kindHeader); len(v) == 1 {
			switch v[0] {
			case "unary":
				return net.KindUnary
			case "stream":
				return net.KindStream
			}
		}
	}
	if mk, ok := h.(net.MethodKinder); ok && mk.MethodKind(method) == net.KindStream {
		return net.KindStream
	}
	return net.KindUnary
}

// serverStream adapts grpc.ServerStream. grpc allows one sender and one
// receiver at a time; the seam lets several tasks share a stream, so Send
// and Recv are each serialized.
type serverStream struct {
	ss           grpc.ServerStream
	sendMu, rcMu sync.Mutex
}

func (s *serverStream) Send(msg []byte) error {
	if len(msg) > net.MaxMessageBytes {
		return net.Errorf(net.ResourceExhausted, "grpcx: message is %d bytes, limit %d", len(msg), net.MaxMessageBytes)
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return fromGRPC(s.ss.SendMsg(msg))
}

func (s *serverStream) Recv() ([]byte, error) {
	s.rcMu.Lock()
	defer s.rcMu.Unlock()
	var b []byte
	if err := s.ss.RecvMsg(&b); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fromGRPC(err)
	}
	return b, nil
}

// Dial returns a connection to addr ("host:port"). Like a gRPC channel it
// connects lazily and reconnects after failures, so Dial itself only fails
// on a malformed address; an unreachable address makes calls fail
// Unavailable.
func (n *Network) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if _, _, err := stdnet.SplitHostPort(addr); err != nil {
		return nil, net.Errorf(net.InvalidArgument, "grpcx: dial address %q: %v", addr, err)
	}
	return n.DialOptions(addr)
}

// DialOptions is Dial with extra grpc dial options (tests pass a custom
// dialer); the seam's codec, limits and keepalive are always applied.
func (n *Network) DialOptions(addr string, extra ...grpc.DialOption) (*Conn, error) {
	o := n.opts
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodec(rawCodec{}),
			grpc.MaxCallRecvMsgSize(net.MaxMessageBytes),
			grpc.MaxCallSendMsgSize(net.MaxMessageBytes),
		),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: o.KeepaliveTime, Timeout: o.KeepaliveTimeout, PermitWithoutStream: true}),
	}, extra...)
	// passthrough: the address goes to the dialer as is, with no resolver
	// in between (the seam's addresses are plain host:port).
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, net.Errorf(net.InvalidArgument, "grpcx: dial %s: %v", addr, err)
	}
	return &Conn{cc: cc}, nil
}

// Conn is a gRPC client connection (a channel).
type Conn struct {
	cc *grpc.ClientConn
}

var streamDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// Call makes a unary call.
func (c *Conn) Call(ctx context.Context, method string, req []byte) ([]byte, error) {
	if len(req) > net.MaxMessageBytes {
		return nil, net.Errorf(net.ResourceExhausted, "grpcx: %s: request is %d bytes, limit %d", method, len(req), net.MaxMessageBytes)
	}
	if req == nil {
		req = []byte{}
	}
	ctx, err := withOutgoing(ctx, "unary")
	if err != nil {
		return nil, err
	}
	var resp []byte
	if err := c.cc.Invoke(ctx, method, req, &resp); err != nil {
		return nil, fromGRPC(err)
	}
	return resp, nil
}

// Stream opens a bidirectional stream. The stream's resources are released
// when Recv returns an error (including io.EOF) or ctx is cancelled.
func (c *Conn) Stream(ctx context.Context, method string) (net.ClientStream, error) {
	ctx, err := withOutgoing(ctx, "stream")
	if err != nil {
		return nil, err
	}
	cs, err := c.cc.NewStream(ctx, streamDesc, method)
	if err != nil {
		return nil, fromGRPC(err)
	}
	return &clientStream{cs: cs}, nil
}

// Close closes the connection, breaking its calls and streams.
func (c *Conn) Close() error {
	if err := c.cc.Close(); err != nil {
		return net.Errorf(net.Internal, "grpcx: close: %v", err)
	}
	return nil
}

type clientStream struct {
	cs           grpc.ClientStream
	sendMu, rcMu sync.Mutex
}

// Send returns io.EOF once the stream has ended; Recv then reports how.
func (s *clientStream) Send(msg []byte) error {
	if len(msg) > net.MaxMessageBytes {
		return net.Errorf(net.ResourceExhausted, "grpcx: message is %d bytes, limit %d", len(msg), net.MaxMessageBytes)
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if err := s.cs.SendMsg(msg); err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return fromGRPC(err)
	}
	return nil
}

func (s *clientStream) Recv() ([]byte, error) {
	s.rcMu.Lock()
	defer s.rcMu.Unlock()
	var b []byte
	if err := s.cs.RecvMsg(&b); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fromGRPC(err)
	}
	return b, nil
}

func (s *clientStream) CloseSend() error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return fromGRPC(s.cs.CloseSend())
}
