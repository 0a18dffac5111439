package grpcx

import (
	"fmt"

	"github.com/stratadb/strata/net"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// rawCodec passes message bytes through unchanged. It reports the name
// "proto" so that calls carry the standard content-type and a stock gRPC
// server (with generated services) accepts them: the bytes are protobuf.
// A protobuf message (the reflection service's, the only service
// registered with grpc itself) is marshalled as protobuf.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("grpcx: raw codec cannot marshal %T", v)
}

// Unmarshal keeps data without copying: grpc materializes a fresh slice for
// each message before calling a v1 codec, so nothing else aliases it.
func (rawCodec) Unmarshal(data []byte, v any) error {
	switch p := v.(type) {
	case *[]byte:
		*p = data
		return nil
	case proto.Message:
		return proto.Unmarshal(data, p)
	}
	return fmt.Errorf("grpcx: raw codec cannot unmarshal into %T", v)
}

// toGRPC converts a seam error into a gRPC status error. Non-Status errors
// become Internal, as the seam specifies.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	s := net.ToStatus(err)
	return status.Error(codes.Code(s.Code), s.Msg)
}

// fromGRPC converts an error from grpc into a *net.Status.
func fromGRPC(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		if st.Code() == codes.OK {
			return nil
		}
		return &net.Status{Code: net.Code(st.Code()), Msg: st.Message()}
	}
	return net.ToStatus(err)
}
