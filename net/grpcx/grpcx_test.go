package grpcx_test

import (
	"context"
	"errors"
	"io"
	stdnet "net"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/net/internal/echopb"
	"github.com/stratadb/strata/net/nettest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// unusedAddr returns a loopback address nobody listens on: a port the
// kernel just handed out and that was closed again.
func unusedAddr(t *testing.T) string {
	l, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestConformance(t *testing.T) {
	nettest.Run(t, nettest.HarnessFunc(func(t *testing.T, body func(nettest.World)) {
		n := grpcx.New(grpcx.Options{})
		body(nettest.World{
			Clock:      clock.NewReal(),
			Server:     n,
			Client:     n,
			ListenAddr: "127.0.0.1:0",
			UnusedAddr: unusedAddr(t),
		})
	}))
}

const (
	mSay  = "/strata.test.echo.Echo/Say"
	mChat = "/strata.test.echo.Echo/Chat"
)

func echoMux() *net.Mux {
	m := net.NewMux()
	net.HandleUnary(m, mSay, func(ctx context.Context, r *echopb.EchoRequest) (*echopb.EchoResponse, error) {
		if r.Fail != 0 {
			return nil, net.Errorf(net.Code(r.Fail), "failing: %s", r.Text)
		}
		return &echopb.EchoResponse{Text: "seam:" + r.Text, Seq: r.Seq}, nil
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
			if err := s.Send(&echopb.EchoResponse{Text: "seam:" + r.Text, Seq: r.Seq}); err != nil {
				return err
			}
		}
	})
	return m
}

// TestGeneratedClientToSeamServer: a protoc-generated gRPC client, with the
// stock codec and no Strata headers, talks to a seam Handler served by
// grpcx. This shows the wire format is real protobuf over standard gRPC.
func TestGeneratedClientToSeamServer(t *testing.T) {
	l, err := grpcx.New(grpcx.Options{}).Listen("127.0.0.1:0", echoMux())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cc, err := grpc.NewClient("passthrough:///"+l.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := echopb.NewEchoClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := client.Say(ctx, &echopb.EchoRequest{Text: "hi", Seq: 4})
	if err != nil || resp.Text != "seam:hi" || resp.Seq != 4 {
		t.Fatalf("Say = %v, %v", resp, err)
	}
	_, err = client.Say(ctx, &echopb.EchoRequest{Text: "x", Fail: uint32(codes.NotFound)})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Say(fail) = %v, want NotFound", err)
	}

	chat, err := client.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := chat.Send(&echopb.EchoRequest{Text: "c", Seq: uint64(i)}); err != nil {
			t.Fatal(err)
		}
		r, err := chat.Recv()
		if err != nil || r.Seq != uint64(i) || r.Text != "seam:c" {
			t.Fatalf("chat %d: %v %v", i, r, err)
		}
	}
	if err := chat.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := chat.Recv(); err != io.EOF {
		t.Fatalf("chat end: %v, want io.EOF", err)
	}
}

type genServer struct {
	echopb.UnimplementedEchoServer
}

func (genServer) Say(ctx context.Context, r *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	if r.Fail != 0 {
		return nil, status.Error(codes.Code(r.Fail), "generated server failing")
	}
	return &echopb.EchoResponse{Text: "gen:" + r.Text, Seq: r.Seq}, nil
}

func (genServer) Chat(s grpc.BidiStreamingServer[echopb.EchoRequest, echopb.EchoResponse]) error {
	for {
		r, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&echopb.EchoResponse{Text: "gen:" + r.Text, Seq: r.Seq}); err != nil {
			return err
		}
	}
}

// TestSeamClientToGeneratedServer: the reverse direction, a grpcx Conn with
// the typed helpers calling a stock gRPC server with generated services.
func TestSeamClientToGeneratedServer(t *testing.T) {
	lis, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	echopb.RegisterEchoServer(srv, genServer{})
	go srv.Serve(lis)
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := grpcx.New(grpcx.Options{}).Dial(ctx, lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := net.CallProto[*echopb.EchoResponse](ctx, c, mSay, &echopb.EchoRequest{Text: "yo", Seq: 9})
	if err != nil || resp.Text != "gen:yo" || resp.Seq != 9 {
		t.Fatalf("CallProto = %v, %v", resp, err)
	}
	_, err = net.CallProto[*echopb.EchoResponse](ctx, c, mSay, &echopb.EchoRequest{Fail: uint32(net.PermissionDenied)})
	var st *net.Status
	if !errors.As(err, &st) || st.Code != net.PermissionDenied {
		t.Fatalf("CallProto(fail) = %v, want PermissionDenied *Status", err)
	}
	s, err := net.StreamProto[*echopb.EchoRequest, *echopb.EchoResponse](ctx, c, mChat)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Send(&echopb.EchoRequest{Text: "s", Seq: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r, err := s.Recv()
		if err != nil || r.Seq != uint64(i) || r.Text != "gen:s" {
			t.Fatalf("recv %d: %v %v", i, r, err)
		}
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("end: %v, want io.EOF", err)
	}
}

func TestBadAddresses(t *testing.T) {
	n := grpcx.New(grpcx.Options{})
	for _, addr := range []string{"", "nohostport", "1.2.3.4"} {
		if _, err := n.Listen(addr, echoMux()); net.CodeOf(err) != net.InvalidArgument {
			t.Errorf("Listen(%q) = %v, want InvalidArgument", addr, err)
		}
		if _, err := n.Dial(context.Background(), addr); net.CodeOf(err) != net.InvalidArgument {
			t.Errorf("Dial(%q) = %v, want InvalidArgument", addr, err)
		}
	}
}

func TestDrain(t *testing.T) {
	n := grpcx.New(grpcx.Options{})
	l, err := n.Listen("127.0.0.1:0", echoMux())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := n.Dial(ctx, l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := net.CallProto[*echopb.EchoResponse](ctx, c, mSay, &echopb.EchoRequest{Text: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := l.(*grpcx.Listener).Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := net.CallProto[*echopb.EchoResponse](ctx, c, mSay, &echopb.EchoRequest{Text: "b"}); net.CodeOf(err) != net.Unavailable {
		t.Fatalf("call after Drain = %v, want Unavailable", err)
	}
}

// BenchmarkUnary measures one small unary round trip over loopback gRPC.
func BenchmarkUnary(b *testing.B) {
	n := grpcx.New(grpcx.Options{})
	l, err := n.Listen("127.0.0.1:0", echoMux())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	c, err := n.Dial(ctx, l.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := &echopb.EchoRequest{Text: "bench", Payload: make([]byte, 128)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := net.CallProto[*echopb.EchoResponse](ctx, c, mSay, req); err != nil {
			b.Fatal(err)
		}
	}
}
