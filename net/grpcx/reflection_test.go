package grpcx_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/net/internal/echopb"
)

const echoService = "strata.test.echo.Echo"

// reflect serves echoMux with opts and returns a client connection.
func reflectServer(t *testing.T, opts grpcx.Options) *grpc.ClientConn {
	t.Helper()
	l, err := grpcx.New(opts).Listen("127.0.0.1:0", echoMux())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cc, err := grpc.NewClient("passthrough:///"+l.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestReflection: with Options.Reflection, the server answers gRPC server
// reflection the way grpcurl uses it — list the services (the named ones
// and reflection itself), then describe one from the file descriptor that
// defines it — over v1 and v1alpha, while the seam handler still serves
// the named service's calls.
func TestReflection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc := reflectServer(t, grpcx.Options{Reflection: []string{echoService}})

	st, err := reflectionv1.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionv1.ServerReflectionRequest) *reflectionv1.ServerReflectionResponse {
		t.Helper()
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	list := ask(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range list.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	want := []string{"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", echoService}
	if !slices.Equal(names, want) {
		t.Fatalf("ListServices = %v, want %v", names, want)
	}
	files := ask(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: echoService}})
	var methods []string
	for _, raw := range files.GetFileDescriptorResponse().GetFileDescriptorProto() {
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(raw, &fd); err != nil {
			t.Fatal(err)
		}
		for _, svc := range fd.GetService() {
			if fd.GetPackage()+"."+svc.GetName() != echoService {
				continue
			}
			for _, m := range svc.GetMethod() {
				methods = append(methods, m.GetName())
			}
		}
	}
	if !slices.Equal(methods, []string{"Say", "Chat"}) {
		t.Fatalf("described methods %v, want [Say Chat]", methods)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}

	// Older clients ask v1alpha.
	old, err := reflectionv1alpha.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 v1alpha is deprecated, and still what older grpcurl and clients ask
	if err := old.Send(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := old.Recv()
	//lint:ignore SA1019 as above: the v1alpha answer is what those clients read
	if err != nil || len(resp.GetListServicesResponse().GetService()) != 3 {
		t.Fatalf("v1alpha ListServices = %v, %v", resp, err)
	}

	// The seam still serves the service itself.
	r, err := echopb.NewEchoClient(cc).Say(ctx, &echopb.EchoRequest{Text: "hi"})
	if err != nil || r.Text != "seam:hi" {
		t.Fatalf("Say = %v, %v", r, err)
	}
}

// TestNoReflectionByDefault: without the option the reflection method is
// just an unknown method of the seam handler.
func TestNoReflectionByDefault(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc := reflectServer(t, grpcx.Options{})
	st, err := reflectionv1.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}})
	if _, err := st.Recv(); status.Code(err) != codes.Unimplemented {
		t.Fatalf("reflection without the option: %v, want Unimplemented", err)
	}
}

// TestReflectionUnknownService: Listen refuses a service whose descriptor
// no imported package registered.
func TestReflectionUnknownService(t *testing.T) {
	for _, name := range []string{"no.such.Service", "strata.test.echo.EchoRequest"} {
		_, err := grpcx.New(grpcx.Options{Reflection: []string{name}}).Listen("127.0.0.1:0", echoMux())
		if net.CodeOf(err) != net.InvalidArgument || !strings.Contains(err.Error(), name) {
			t.Errorf("Listen with reflection of %q: %v, want InvalidArgument naming it", name, err)
		}
	}
}
