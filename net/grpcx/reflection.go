package grpcx

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/stratadb/strata/net"
)

// serviceNames is reflection's list of services: the server registers none
// of its own (the seam handler serves everything), so it names them.
type serviceNames []string

// GetServiceInfo implements reflection.ServiceInfoProvider; reflection
// reads only the names.
func (s serviceNames) GetServiceInfo() map[string]grpc.ServiceInfo {
	m := make(map[string]grpc.ServiceInfo, len(s))
	for _, name := range s {
		m[name] = grpc.ServiceInfo{}
	}
	return m
}

// checkReflection refuses a service name whose descriptor is not in
// protoregistry.GlobalFiles: reflection would list it and then fail to
// describe it.
func checkReflection(services []string) error {
	for _, name := range services {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			return net.Errorf(net.InvalidArgument, "grpcx: reflection service %q: %v (import its generated package)", name, err)
		}
		if _, ok := d.(protoreflect.ServiceDescriptor); !ok {
			return net.Errorf(net.InvalidArgument, "grpcx: reflection service %q is not a service", name)
		}
	}
	return nil
}

// registerReflection registers the reflection service (v1 and v1alpha, as
// reflection.Register does) listing services and itself. Its messages are
// protobuf structs, which the server's codec marshals (rawCodec falls back
// to proto for them).
func registerReflection(srv *grpc.Server, services []string) {
	names := append(serviceNames{reflectionv1.ServerReflection_ServiceDesc.ServiceName,
		reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName}, services...)
	opts := reflection.ServerOptions{Services: names, DescriptorResolver: protoregistry.GlobalFiles, ExtensionResolver: protoregistry.GlobalTypes}
	reflectionv1.RegisterServerReflectionServer(srv, reflection.NewServerV1(opts))
	reflectionv1alpha.RegisterServerReflectionServer(srv, reflection.NewServer(opts))
}
