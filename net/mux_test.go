package net_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/internal/echopb"
	"google.golang.org/protobuf/proto"
)

// directConn calls a Handler in-process: enough to exercise the typed
// helpers without a transport. Streams run the handler synchronously over a
// pre-filled inbox.
type directConn struct{ h net.Handler }

func (d directConn) Call(ctx context.Context, method string, req []byte) ([]byte, error) {
	resp, err := d.h.Unary(ctx, method, bytes.Clone(req))
	if err != nil {
		return nil, net.ToStatus(err)
	}
	return resp, nil
}
func (d directConn) Stream(ctx context.Context, method string) (net.ClientStream, error) {
	return &directStream{ctx: ctx, method: method, h: d.h}, nil
}
func (d directConn) Close() error { return nil }

type directStream struct {
	ctx    context.Context
	method string
	h      net.Handler
	in     [][]byte
	out    [][]byte
	done   bool
	err    error
}

func (s *directStream) Send(b []byte) error { s.in = append(s.in, bytes.Clone(b)); return nil }
func (s *directStream) CloseSend() error {
	s.done = true
	s.err = s.h.Stream(s.ctx, s.method, (*directServer)(s))
	return nil
}
func (s *directStream) Recv() ([]byte, error) {
	if !s.done {
		return nil, errors.New("directStream: Recv before CloseSend")
	}
	if len(s.out) > 0 {
		b := s.out[0]
		s.out = s.out[1:]
		return b, nil
	}
	if s.err != nil {
		return nil, net.ToStatus(s.err)
	}
	return nil, io.EOF
}

type directServer directStream

func (s *directServer) Send(b []byte) error { s.out = append(s.out, bytes.Clone(b)); return nil }
func (s *directServer) Recv() ([]byte, error) {
	if len(s.in) == 0 {
		return nil, io.EOF
	}
	b := s.in[0]
	s.in = s.in[1:]
	return b, nil
}

const (
	mSay  = "/strata.test.echo.Echo/Say"
	mChat = "/strata.test.echo.Echo/Chat"
	mJSON = "/strata.test.Ctl/Put"
)

type putReq struct {
	Key   string `json:"key"`
	Value int    `json:"value"`
}
type putResp struct {
	Old int `json:"old"`
}

func testMux() *net.Mux {
	m := net.NewMux()
	net.HandleUnary(m, mSay, func(ctx context.Context, r *echopb.EchoRequest) (*echopb.EchoResponse, error) {
		if r.Fail != 0 {
			return nil, net.Errorf(net.Code(r.Fail), "asked to fail")
		}
		return &echopb.EchoResponse{Text: "echo " + r.Text, Seq: r.Seq}, nil
	})
	net.HandleStreamProto(m, mChat, func(ctx context.Context, s *net.ServerStreamOf[*echopb.EchoRequest, *echopb.EchoResponse]) error {
		for {
			r, err := s.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := s.Send(&echopb.EchoResponse{Text: r.Text, Seq: r.Seq}); err != nil {
				return err
			}
		}
	})
	net.HandleUnaryJSON(m, mJSON, func(ctx context.Context, r putReq) (putResp, error) {
		if r.Key == "" {
			return putResp{}, net.Errorf(net.InvalidArgument, "empty key")
		}
		return putResp{Old: r.Value - 1}, nil
	})
	return m
}

func TestMuxUnary(t *testing.T) {
	c := directConn{testMux()}
	ctx := context.Background()
	cases := []struct {
		name string
		req  *echopb.EchoRequest
		want string
		code net.Code
	}{
		{"ok", &echopb.EchoRequest{Text: "hi", Seq: 7}, "echo hi", net.OK},
		{"handler error keeps code", &echopb.EchoRequest{Fail: uint32(net.NotFound)}, "", net.NotFound},
		{"other code", &echopb.EchoRequest{Fail: uint32(net.FailedPrecondition)}, "", net.FailedPrecondition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := net.CallProto[*echopb.EchoResponse](ctx, c, mSay, tc.req)
			if got := net.CodeOf(err); got != tc.code {
				t.Fatalf("code = %v, want %v (err %v)", got, tc.code, err)
			}
			if err == nil && (resp.Text != tc.want || resp.Seq != tc.req.Seq) {
				t.Fatalf("resp = %v, want text %q seq %d", resp, tc.want, tc.req.Seq)
			}
		})
	}
}

func TestMuxRawErrors(t *testing.T) {
	m := testMux()
	ctx := context.Background()
	big := make([]byte, net.MaxMessageBytes+1)
	cases := []struct {
		name   string
		method string
		req    []byte
		code   net.Code
	}{
		{"unknown method", "/x.Y/Z", nil, net.Unimplemented},
		{"stream method called unary", mChat, nil, net.Unimplemented},
		{"malformed proto", mSay, []byte{0xff, 0xff, 0xff}, net.InvalidArgument},
		{"oversized", mSay, big, net.ResourceExhausted},
		{"malformed json", mJSON, []byte(`{"key":`), net.InvalidArgument},
		{"unknown json field", mJSON, []byte(`{"key":"a","extra":1}`), net.InvalidArgument},
		{"trailing json", mJSON, []byte(`{"key":"a"} {}`), net.InvalidArgument},
		{"json handler error", mJSON, []byte(`{"key":""}`), net.InvalidArgument},
		{"json ok", mJSON, []byte(`{"key":"a","value":3}`), net.OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Unary(ctx, tc.method, tc.req)
			if got := net.CodeOf(err); got != tc.code {
				t.Fatalf("code = %v, want %v (err %v)", got, tc.code, err)
			}
		})
	}
	if err := m.Stream(ctx, mSay, nil); net.CodeOf(err) != net.Unimplemented {
		t.Fatalf("unary method called as stream: %v, want Unimplemented", err)
	}
}

func TestMuxKindsAndMethods(t *testing.T) {
	m := testMux()
	for method, want := range map[string]net.Kind{mSay: net.KindUnary, mChat: net.KindStream, mJSON: net.KindUnary, "/a.B/C": net.KindUnknown} {
		if got := m.MethodKind(method); got != want {
			t.Errorf("MethodKind(%s) = %v, want %v", method, got, want)
		}
	}
	got := strings.Join(m.Methods(), ",")
	want := strings.Join([]string{mJSON, mChat, mSay}, ",")
	if got != want {
		t.Errorf("Methods = %s, want %s", got, want)
	}
}

func TestMuxRegistrationPanics(t *testing.T) {
	noop := func(context.Context, net.ServerStream) error { return nil }
	cases := []struct {
		name string
		reg  func(m *net.Mux)
	}{
		{"twice", func(m *net.Mux) { net.HandleStream(m, mSay, noop) }},
		{"no leading slash", func(m *net.Mux) { net.HandleStream(m, "a.B/C", noop) }},
		{"no method", func(m *net.Mux) { net.HandleStream(m, "/a.B/", noop) }},
		{"no service", func(m *net.Mux) { net.HandleStream(m, "//C", noop) }},
		{"extra slash", func(m *net.Mux) { net.HandleStream(m, "/a/B/C", noop) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tc.reg(testMux())
		})
	}
}

func TestTypedStream(t *testing.T) {
	c := directConn{testMux()}
	s, err := net.StreamProto[*echopb.EchoRequest, *echopb.EchoResponse](context.Background(), c, mChat)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.Send(&echopb.EchoRequest{Text: "m", Seq: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		r, err := s.Recv()
		if err != nil || r.Seq != uint64(i) {
			t.Fatalf("recv %d: %v %v", i, r, err)
		}
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("after last: %v, want io.EOF", err)
	}
}

func TestCallJSON(t *testing.T) {
	c := directConn{testMux()}
	resp, err := net.CallJSON[putResp](context.Background(), c, mJSON, putReq{Key: "k", Value: 10})
	if err != nil || resp.Old != 9 {
		t.Fatalf("CallJSON = %+v, %v", resp, err)
	}
	if _, err := net.CallJSON[putResp](context.Background(), c, mJSON, putReq{}); net.CodeOf(err) != net.InvalidArgument {
		t.Fatalf("CallJSON empty key = %v, want InvalidArgument", err)
	}
}

func TestMarshalProtoTooBig(t *testing.T) {
	m := &echopb.EchoRequest{Payload: make([]byte, net.MaxMessageBytes)}
	if _, err := net.MarshalProto(m); net.CodeOf(err) != net.ResourceExhausted {
		t.Fatalf("MarshalProto(oversized) = %v, want ResourceExhausted", err)
	}
	if _, err := net.MarshalJSON(strings.Repeat("a", net.MaxMessageBytes)); net.CodeOf(err) != net.ResourceExhausted {
		t.Fatalf("MarshalJSON(oversized) = %v, want ResourceExhausted", err)
	}
}

func TestToStatus(t *testing.T) {
	cases := []struct {
		err  error
		code net.Code
	}{
		{net.Errorf(net.NotFound, "x"), net.NotFound},
		{errors.Join(errors.New("ctx"), net.Errorf(net.Aborted, "x")), net.Aborted},
		{context.Canceled, net.Canceled},
		{context.DeadlineExceeded, net.DeadlineExceeded},
		{errors.New("boom"), net.Internal},
	}
	for _, tc := range cases {
		if got := net.ToStatus(tc.err); got.Code != tc.code {
			t.Errorf("ToStatus(%v) = %v, want %v", tc.err, got, tc.code)
		}
	}
	if net.ToStatus(nil) != nil {
		t.Error("ToStatus(nil) != nil")
	}
}

func FuzzUnmarshalProto(f *testing.F) {
	good, _ := proto.Marshal(&echopb.EchoRequest{Text: "hello", Seq: 3, Payload: []byte{1, 2}})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := net.UnmarshalProto[*echopb.EchoRequest](b)
		if err != nil {
			if net.CodeOf(err) != net.InvalidArgument {
				t.Fatalf("decode error has code %v: %v", net.CodeOf(err), err)
			}
			return
		}
		// A decoded message re-encodes and decodes to an equal message.
		again, err := net.MarshalProto(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := net.UnmarshalProto[*echopb.EchoRequest](again)
		if err != nil || !proto.Equal(m, m2) {
			t.Fatalf("round trip: %v %v", m2, err)
		}
	})
}

func FuzzUnmarshalJSON(f *testing.F) {
	f.Add([]byte(`{"key":"a","value":1}`))
	f.Add([]byte(`{"key":"a","bogus":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := net.UnmarshalJSON[putReq](b)
		if err != nil {
			if net.CodeOf(err) != net.InvalidArgument {
				t.Fatalf("decode error has code %v: %v", net.CodeOf(err), err)
			}
			return
		}
		again, err := net.MarshalJSON(v)
		if err != nil {
			t.Fatal(err)
		}
		if v2, err := net.UnmarshalJSON[putReq](again); err != nil || v2 != v {
			t.Fatalf("round trip: %+v %v", v2, err)
		}
	})
}
