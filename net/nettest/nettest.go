package nettest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/internal/echopb"
)

// World is one fresh setup handed to a case body.
type World struct {
	// Clock is the implementation's clock; bodies block only through it.
	Clock clock.Clock
	// Server and Client are two nodes' views of the network. The suite
	// listens on Server and dials from Client.
	Server, Client net.Network
	// ListenAddr is an address the server node may Listen on (possibly
	// with port 0); the bound address comes from Listener.Addr. The suite
	// listens on it at most once at a time.
	ListenAddr string
	// UnusedAddr is a well-formed address on which nobody listens.
	UnusedAddr string
}

// Harness adapts one implementation to the suite.
type Harness interface {
	// Run builds a fresh World and runs body as a task of the
	// implementation, returning after body has returned. body never calls
	// t.Fatal; Run may, for setup failures outside body.
	Run(t *testing.T, body func(w World))
}

// HarnessFunc adapts a function to Harness.
type HarnessFunc func(t *testing.T, body func(w World))

// Run implements Harness.
func (f HarnessFunc) Run(t *testing.T, body func(w World)) { f(t, body) }

// bound caps every wait in the suite so a broken implementation fails a case
// rather than hanging. Under virtual time it costs nothing.
const bound = 10 * time.Second

// Run runs every conformance case against h, each in a fresh World.
func Run(t *testing.T, h Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, w World)
	}{
		{"UnaryRoundTrip", testUnaryRoundTrip},
		{"RawBytesUnchanged", testRawBytes},
		{"ErrorCodes", testErrorCodes},
		{"UnknownMethod", testUnknownMethod},
		{"UnknownAddress", testUnknownAddress},
		{"StreamInOrder", testStreamInOrder},
		{"ServerEndsStream", testServerEndsStream},
		{"ServerStreamError", testServerStreamError},
		{"CloseSendGivesServerEOF", testCloseSend},
		{"CancelUnary", testCancelUnary},
		{"DeadlineUnary", testDeadlineUnary},
		{"CancelStream", testCancelStream},
		{"ListenerClose", testListenerClose},
		{"Oversized", testOversized},
		{"ConcurrentCalls", testConcurrentCalls},
		{"DeadlinePropagates", testDeadlinePropagates},
		{"ConnClose", testConnClose},
		{"Metadata", testMetadata},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.Run(t, func(w World) { c.fn(t, w) })
		})
	}
}

const (
	mSay   = "/strata.test.echo.Echo/Say"
	mChat  = "/strata.test.echo.Echo/Chat"
	mRaw   = "/strata.test.Raw/Echo"
	mBlock = "/strata.test.Raw/Block"
	mBig   = "/strata.test.Raw/Big"
	mPlain = "/strata.test.Raw/PlainError"
	mSend3 = "/strata.test.Raw/SendThree"
	mFail  = "/strata.test.Raw/StreamFail"
	mCount = "/strata.test.Raw/Count"
	mHold  = "/strata.test.Raw/Hold"
	mLeft  = "/strata.test.Raw/TimeLeft"
	mMD    = "/strata.test.Raw/Metadata"
	mMDS   = "/strata.test.Raw/MetadataStream"
)

// server is the handler every case serves. cancelled is set when a
// blocking handler observed its context end.
type server struct {
	mux       *net.Mux
	cancelled *event
}

func newServer(clk clock.Clock) *server {
	s := &server{mux: net.NewMux(), cancelled: newEvent(clk)}
	m := s.mux
	net.HandleUnary(m, mSay, func(ctx context.Context, r *echopb.EchoRequest) (*echopb.EchoResponse, error) {
		if r.Fail != 0 {
			return nil, net.Errorf(net.Code(r.Fail), "failing as asked: %s", r.Text)
		}
		return &echopb.EchoResponse{Text: "echo:" + r.Text, Seq: r.Seq, Payload: r.Payload}, nil
	})
	net.HandleStreamProto(m, mChat, func(ctx context.Context, st *net.ServerStreamOf[*echopb.EchoRequest, *echopb.EchoResponse]) error {
		for {
			r, err := st.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := st.Send(&echopb.EchoResponse{Text: r.Text, Seq: r.Seq}); err != nil {
				return err
			}
		}
	})
	net.HandleUnaryBytes(m, mRaw, func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	net.HandleUnaryBytes(m, mBlock, func(ctx context.Context, b []byte) ([]byte, error) {
		if waitCtx(clk, ctx, bound) {
			s.cancelled.Set()
			return nil, net.Errorf(net.Canceled, "handler saw cancellation")
		}
		return nil, net.Errorf(net.Internal, "handler was not cancelled within %v", bound)
	})
	net.HandleUnaryBytes(m, mBig, func(ctx context.Context, b []byte) ([]byte, error) {
		return make([]byte, net.MaxMessageBytes+1), nil
	})
	net.HandleUnaryBytes(m, mPlain, func(ctx context.Context, b []byte) ([]byte, error) {
		return nil, errors.New("a plain error")
	})
	net.HandleUnaryBytes(m, mLeft, func(ctx context.Context, b []byte) ([]byte, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			return []byte("none"), nil
		}
		return []byte(dl.Sub(clk.Now()).String()), nil
	})
	net.HandleUnaryBytes(m, mMD, func(ctx context.Context, b []byte) ([]byte, error) {
		return []byte(formatMetadata(net.IncomingMetadata(ctx))), nil
	})
	net.HandleStream(m, mMDS, func(ctx context.Context, st net.ServerStream) error {
		return st.Send([]byte(formatMetadata(net.IncomingMetadata(ctx))))
	})
	net.HandleStream(m, mSend3, func(ctx context.Context, st net.ServerStream) error {
		for i := range 3 {
			if err := st.Send([]byte{byte(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	net.HandleStream(m, mFail, func(ctx context.Context, st net.ServerStream) error {
		if err := st.Send([]byte("first")); err != nil {
			return err
		}
		return net.Errorf(net.FailedPrecondition, "stream failed on purpose")
	})
	net.HandleStream(m, mCount, func(ctx context.Context, st net.ServerStream) error {
		n := 0
		for {
			_, err := st.Recv()
			if err == io.EOF {
				return st.Send([]byte(fmt.Sprint(n)))
			}
			if err != nil {
				return err
			}
			n++
		}
	})
	net.HandleStream(m, mHold, func(ctx context.Context, st net.ServerStream) error {
		// Echo until the stream breaks; report how it broke.
		for {
			b, err := st.Recv()
			if err != nil {
				s.cancelled.Set()
				return err
			}
			if err := st.Send(b); err != nil {
				s.cancelled.Set()
				return err
			}
		}
	})
	return s
}

// setup listens on the server node and dials it from the client node.
func setup(t *testing.T, w World) (*server, net.Listener, net.Conn, bool) {
	s := newServer(w.Clock)
	l, err := w.Server.Listen(w.ListenAddr, s.mux)
	if err != nil {
		t.Errorf("Listen(%q): %v", w.ListenAddr, err)
		return nil, nil, nil, false
	}
	ctx, cancel := clock.WithTimeout(w.Clock, context.Background(), bound)
	defer cancel()
	c, err := w.Client.Dial(ctx, l.Addr())
	if err != nil {
		t.Errorf("Dial(%q): %v", l.Addr(), err)
		l.Close()
		return nil, nil, nil, false
	}
	return s, l, c, true
}

func closeAll(t *testing.T, l net.Listener, c net.Conn) {
	if err := c.Close(); err != nil {
		t.Errorf("Conn.Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Listener.Close: %v", err)
	}
}

func callCtx(w World) (context.Context, context.CancelFunc) {
	return clock.WithTimeout(w.Clock, context.Background(), bound)
}

// openStream connects a fresh client to a fresh server and opens a stream
// on method, bounded by the suite's call timeout. It reports failures with
// t.Errorf and returns nil; otherwise done closes everything it opened.
func openStream(t *testing.T, w World, method string) (net.ClientStream, func()) {
	_, l, c, ok := setup(t, w)
	if !ok {
		return nil, nil
	}
	ctx, cancel := callCtx(w)
	s, err := c.Stream(ctx, method)
	if err != nil {
		t.Errorf("Stream: %v", err)
		cancel()
		closeAll(t, l, c)
		return nil, nil
	}
	return s, func() {
		cancel()
		closeAll(t, l, c)
	}
}

func testUnaryRoundTrip(t *testing.T, w World) {
	_, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := callCtx(w)
	defer cancel()
	for i, text := range []string{"hello", "", strings.Repeat("x", 100000)} {
		resp, err := net.CallProto[*echopb.EchoResponse](ctx, c, mSay, &echopb.EchoRequest{Text: text, Seq: uint64(i)})
		if err != nil {
			t.Errorf("call %d: %v", i, err)
			return
		}
		if resp.Text != "echo:"+text || resp.Seq != uint64(i) {
			t.Errorf("call %d: got text %.20q seq %d", i, resp.Text, resp.Seq)
		}
	}
}

func testRawBytes(t *testing.T, w World) {
	_, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := callCtx(w)
	defer cancel()
	for _, msg := range [][]byte{{}, {0}, []byte("not protobuf \xff\xfe"), bytes.Repeat([]byte{7}, 70000)} {
		sent := bytes.Clone(msg)
		got, err := c.Call(ctx, mRaw, sent)
		if err != nil {
			t.Errorf("raw call (%d bytes): %v", len(msg), err)
			return
		}
		if !bytes.Equal(got, msg) {
			t.Errorf("raw call: got %d bytes, want %d bytes unchanged", len(got), len(msg))
		}
		// The transport must not keep aliasing the caller's buffer.
		for i := range sent {
			sent[i] ^= 0xff
		}
		if !bytes.Equal(got, msg) {
			t.Errorf("response aliases the request buffer")
		}
	}
}

func testErrorCodes(t *testing.T, w World) {
	_, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := callCtx(w)
	defer cancel()
	codes := []net.Code{net.InvalidArgument, net.NotFound, net.AlreadyExists, net.PermissionDenied,
		net.ResourceExhausted, net.FailedPrecondition, net.Aborted, net.OutOfRange, net.Unimplemented,
		net.Internal, net.Unavailable, net.DataLoss, net.Unauthenticated}
	for _, code := range codes {
		_, err := net.CallProto[*echopb.EchoResponse](ctx, c, mSay, &echopb.EchoRequest{Text: "m-" + code.String(), Fail: uint32(code)})
		var st *net.Status
		if !errors.As(err, &st) {
			t.Errorf("code %v: error %v (%T) is not a *net.Status", code, err, err)
			continue
		}
		if st.Code != code || !strings.Contains(st.Msg, "m-"+code.String()) {
			t.Errorf("code %v: got %v %q", code, st.Code, st.Msg)
		}
	}
	_, err := c.Call(ctx, mPlain, nil)
	if net.CodeOf(err) != net.Internal {
		t.Errorf("plain handler error: got %v, want Internal", err)
	}
}

func testUnknownMethod(t *testing.T, w World) {
	_, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := callCtx(w)
	defer cancel()
	if _, err := c.Call(ctx, "/strata.test.Nope/Nothing", []byte("x")); net.CodeOf(err) != net.Unimplemented {
		t.Errorf("unknown unary method: got %v, want Unimplemented", err)
	}
	s, err := c.Stream(ctx, "/strata.test.Nope/Stream")
	if err == nil {
		_, err = s.Recv()
	}
	if net.CodeOf(err) != net.Unimplemented {
		t.Errorf("unknown stream method: got %v, want Unimplemented", err)
	}
}

func testUnknownAddress(t *testing.T, w World) {
	ctx, cancel := callCtx(w)
	defer cancel()
	c, err := w.Client.Dial(ctx, w.UnusedAddr)
	if err == nil {
		defer c.Close()
		_, err = c.Call(ctx, mRaw, []byte("x"))
	}
	if net.CodeOf(err) != net.Unavailable {
		t.Errorf("call to unused address %s: got %v, want Unavailable", w.UnusedAddr, err)
	}
}

func testStreamInOrder(t *testing.T, w World) {
	_, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := callCtx(w)
	defer cancel()
	s, err := net.StreamProto[*echopb.EchoRequest, *echopb.EchoResponse](ctx, c, mChat)
	if err != nil {
		t.Errorf("Stream: %v", err)
		return
	}
	const n = 100
	// Interleave: a window of sends ahead of receives, to exercise
	// buffering in both directions.
	for i := range n + 8 {
		if i < n {
			if err := s.Send(&echopb.EchoRequest{Text: "s", Seq: uint64(i)}); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
		if j := i - 8; j >= 0 {
			r, err := s.Recv()
			if err != nil {
				t.Errorf("recv %d: %v", j, err)
				return
			}
			if r.Seq != uint64(j) {
				t.Errorf("recv %d: got seq %d (out of order)", j, r.Seq)
				return
			}
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Errorf("CloseSend: %v", err)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Errorf("after CloseSend: got %v, want io.EOF", err)
	}
}

func testServerEndsStream(t *testing.T, w World) {
	s, done := openStream(t, w, mSend3)
	if s == nil {
		return
	}
	defer done()
	for i := range 3 {
		b, err := s.Recv()
		if err != nil || !bytes.Equal(b, []byte{byte(i)}) {
			t.Errorf("recv %d: %v %v", i, b, err)
			return
		}
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Errorf("after handler returned nil: got %v, want io.EOF", err)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Errorf("Recv after io.EOF: got %v, want io.EOF again", err)
	}
}

func testServerStreamError(t *testing.T, w World) {
	s, done := openStream(t, w, mFail)
	if s == nil {
		return
	}
	defer done()
	if b, err := s.Recv(); err != nil || string(b) != "first" {
		t.Errorf("first recv: %q %v", b, err)
		return
	}
	_, err := s.Recv()
	var st *net.Status
	if !errors.As(err, &st) || st.Code != net.FailedPrecondition || !strings.Contains(st.Msg, "on purpose") {
		t.Errorf("after handler error: got %v, want FailedPrecondition *Status", err)
	}
}

func testCloseSend(t *testing.T, w World) {
	s, done := openStream(t, w, mCount)
	if s == nil {
		return
	}
	defer done()
	for i := range 7 {
		if err := s.Send([]byte{byte(i)}); err != nil {
			t.Errorf("send %d: %v", i, err)
			return
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Errorf("CloseSend: %v", err)
		return
	}
	b, err := s.Recv()
	if err != nil || string(b) != "7" {
		t.Errorf("server count: %q %v, want \"7\"", b, err)
		return
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Errorf("final recv: got %v, want io.EOF", err)
	}
}

func isCancelCode(err error) bool {
	c := net.CodeOf(err)
	return c == net.Canceled || c == net.DeadlineExceeded
}

func testCancelUnary(t *testing.T, w World) {
	srv, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := clock.WithCancel(context.Background())
	defer cancel()
	w.Clock.AfterFunc(50*time.Millisecond, cancel)
	start := w.Clock.Mono()
	_, err := c.Call(ctx, mBlock, []byte("x"))
	if net.CodeOf(err) != net.Canceled {
		t.Errorf("cancelled call: got %v, want Canceled", err)
	}
	if el := w.Clock.Mono() - start; el >= bound {
		t.Errorf("cancelled call took %v", el)
	}
	if !srv.cancelled.Wait(bound) {
		t.Errorf("handler's context was not cancelled")
	}
}

func testDeadlineUnary(t *testing.T, w World) {
	srv, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := clock.WithTimeout(w.Clock, context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, mBlock, []byte("x"))
	if net.CodeOf(err) != net.DeadlineExceeded {
		t.Errorf("call past deadline: got %v, want DeadlineExceeded", err)
	}
	if !srv.cancelled.Wait(bound) {
		t.Errorf("handler's context did not end after the caller's deadline")
	}
}

func testCancelStream(t *testing.T, w World) {
	srv, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := clock.WithCancel(context.Background())
	defer cancel()
	s, err := c.Stream(ctx, mHold)
	if err != nil {
		t.Errorf("Stream: %v", err)
		return
	}
	if err := s.Send([]byte("a")); err != nil {
		t.Errorf("send: %v", err)
		return
	}
	if b, err := s.Recv(); err != nil || string(b) != "a" {
		t.Errorf("recv: %q %v", b, err)
		return
	}
	w.Clock.AfterFunc(20*time.Millisecond, cancel)
	if _, err := s.Recv(); !isCancelCode(err) {
		t.Errorf("Recv on cancelled stream: got %v, want Canceled", err)
	}
	if !srv.cancelled.Wait(bound) {
		t.Errorf("server side of a cancelled stream did not break")
	}
}

func testListenerClose(t *testing.T, w World) {
	srv, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer c.Close()
	ctx, cancel := callCtx(w)
	defer cancel()
	if _, err := c.Call(ctx, mRaw, []byte("before")); err != nil {
		t.Errorf("call before close: %v", err)
		return
	}
	s, err := c.Stream(ctx, mHold)
	if err != nil {
		t.Errorf("Stream: %v", err)
		return
	}
	if err := s.Send([]byte("a")); err != nil {
		t.Errorf("send: %v", err)
		return
	}
	if _, err := s.Recv(); err != nil {
		t.Errorf("recv: %v", err)
		return
	}
	if err := l.Close(); err != nil {
		t.Errorf("Listener.Close: %v", err)
	}
	// The open stream breaks.
	if _, err := s.Recv(); err == nil || err == io.EOF {
		t.Errorf("stream across Listener.Close: got %v, want an error", err)
	}
	if !srv.cancelled.Wait(bound) {
		t.Errorf("server side of the stream was not broken by Listener.Close")
	}
	// New calls fail Unavailable.
	if _, err := c.Call(ctx, mRaw, []byte("after")); net.CodeOf(err) != net.Unavailable {
		t.Errorf("call after Listener.Close: got %v, want Unavailable", err)
	}
}

func testOversized(t *testing.T, w World) {
	_, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := callCtx(w)
	defer cancel()
	big := make([]byte, net.MaxMessageBytes+1)
	if _, err := c.Call(ctx, mRaw, big); net.CodeOf(err) != net.ResourceExhausted {
		t.Errorf("oversized request: got %v, want ResourceExhausted", err)
	}
	if _, err := c.Call(ctx, mBig, []byte("x")); net.CodeOf(err) != net.ResourceExhausted {
		t.Errorf("oversized response: got %v, want ResourceExhausted", err)
	}
	s, err := c.Stream(ctx, mHold)
	if err != nil {
		t.Errorf("Stream: %v", err)
		return
	}
	if err := s.Send(big); net.CodeOf(err) != net.ResourceExhausted {
		t.Errorf("oversized stream message: got %v, want ResourceExhausted", err)
	}
	// Exactly at the limit is allowed.
	atLimit := make([]byte, net.MaxMessageBytes)
	if got, err := c.Call(ctx, mRaw, atLimit); err != nil || len(got) != len(atLimit) {
		t.Errorf("message at the limit: %d bytes, %v", len(got), err)
	}
	// The connection still works afterwards.
	if _, err := c.Call(ctx, mRaw, []byte("x")); err != nil {
		t.Errorf("call after oversized ones: %v", err)
	}
}

func testConcurrentCalls(t *testing.T, w World) {
	_, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := callCtx(w)
	defer cancel()
	const tasks, calls = 8, 5
	wg := clock.NewWaitGroup(w.Clock)
	errs := make([]error, tasks)
	for i := range tasks {
		wg.Add(1)
		w.Clock.Go(ctx, fmt.Sprintf("nettest-caller-%d", i), func(ctx context.Context) {
			defer wg.Done()
			for j := range calls {
				seq := uint64(i*calls + j)
				resp, err := net.CallProto[*echopb.EchoResponse](ctx, c, mSay, &echopb.EchoRequest{Text: fmt.Sprint(seq), Seq: seq})
				if err == nil && (resp.Seq != seq || resp.Text != "echo:"+fmt.Sprint(seq)) {
					err = fmt.Errorf("response %v for request %d", resp, seq)
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	if err := wg.Wait(ctx); err != nil {
		t.Errorf("concurrent callers did not finish within %v", bound)
		return
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
}

func testDeadlinePropagates(t *testing.T, w World) {
	_, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := clock.WithTimeout(w.Clock, context.Background(), 5*time.Second)
	defer cancel()
	b, err := c.Call(ctx, mLeft, nil)
	if err != nil {
		t.Errorf("call: %v", err)
		return
	}
	left, err := time.ParseDuration(string(b))
	if err != nil || left <= 0 || left > 5*time.Second {
		t.Errorf("handler saw time left %q, want a deadline within the caller's 5s", b)
	}
	b, err = c.Call(context.Background(), mLeft, nil)
	if err != nil || string(b) != "none" {
		t.Errorf("call without deadline: handler saw %q %v, want none", b, err)
	}
}

func testConnClose(t *testing.T, w World) {
	_, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer l.Close()
	ctx, cancel := callCtx(w)
	defer cancel()
	if _, err := c.Call(ctx, mRaw, []byte("x")); err != nil {
		t.Errorf("call: %v", err)
		return
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := c.Call(ctx, mRaw, []byte("x")); net.CodeOf(err) != net.Canceled {
		t.Errorf("call on a closed Conn: got %v, want Canceled", err)
	}
	// Other connections to the same listener are unaffected.
	c2, err := w.Client.Dial(ctx, l.Addr())
	if err != nil {
		t.Errorf("second Dial: %v", err)
		return
	}
	defer c2.Close()
	if _, err := c2.Call(ctx, mRaw, []byte("y")); err != nil {
		t.Errorf("call on a second Conn: %v", err)
	}
}

// formatMetadata renders md as sorted "k=v;" pairs.
func formatMetadata(md net.Metadata) string {
	var b strings.Builder
	for _, k := range md.Keys() {
		fmt.Fprintf(&b, "%s=%s;", k, md[k])
	}
	return b.String()
}

// testMetadata: the caller's metadata reaches unary and stream handlers
// exactly (no transport headers added, keys lower-cased), a call without
// any shows none, and metadata that breaks the rules fails InvalidArgument
// before anything is sent.
func testMetadata(t *testing.T, w World) {
	_, l, c, ok := setup(t, w)
	if !ok {
		return
	}
	defer closeAll(t, l, c)
	ctx, cancel := callCtx(w)
	defer cancel()
	got, err := c.Call(ctx, mMD, nil)
	if err != nil || string(got) != "" {
		t.Errorf("call without metadata: handler saw %q, %v; want none", got, err)
	}
	mctx := net.WithMetadata(ctx, "neon-tenant-id", "0123456789abcdef0123456789abcdef", "Neon-Shard-Id", "0102")
	mctx = net.WithMetadata(mctx, "authorization", "Bearer a.b.c")
	want := "authorization=Bearer a.b.c;neon-shard-id=0102;neon-tenant-id=0123456789abcdef0123456789abcdef;"
	if got, err := c.Call(mctx, mMD, nil); err != nil || string(got) != want {
		t.Errorf("unary: handler saw %q, %v; want %q", got, err, want)
	}
	st, err := c.Stream(mctx, mMDS)
	if err != nil {
		t.Errorf("Stream: %v", err)
		return
	}
	if got, err := st.Recv(); err != nil || string(got) != want {
		t.Errorf("stream: handler saw %q, %v; want %q", got, err, want)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Errorf("stream end: %v, want io.EOF", err)
	}
	for _, kv := range [][2]string{
		{"bad key", "v"}, {"grpc-timeout", "1S"}, {"strata-call-kind", "unary"}, {"k", "line\nbreak"},
		{"k", strings.Repeat("x", net.MaxMetadataBytes)},
	} {
		bctx := net.WithMetadata(ctx, kv[0], kv[1])
		if _, err := c.Call(bctx, mMD, nil); net.CodeOf(err) != net.InvalidArgument {
			t.Errorf("unary with metadata %.20q=%.20q: %v, want InvalidArgument", kv[0], kv[1], err)
		}
		if _, err := c.Stream(bctx, mMDS); net.CodeOf(err) != net.InvalidArgument {
			t.Errorf("stream with metadata %.20q=%.20q: %v, want InvalidArgument", kv[0], kv[1], err)
		}
	}
}
