package net

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"google.golang.org/protobuf/proto"
)

// The codec helpers turn typed messages into the seam's bytes and back. They
// are the only place services should marshal wire messages, so that limits
// and error classes are the same everywhere: a message over MaxMessageBytes
// is ResourceExhausted, bytes that do not decode are InvalidArgument.

// newProto returns a fresh, empty message of M's concrete type. M is a
// generated message pointer type (e.g. *pb.Req); ProtoReflect is defined on
// the nil pointer for generated types, so the zero value yields the type.
func newProto[M proto.Message]() M {
	var zero M
	return zero.ProtoReflect().Type().New().Interface().(M)
}

// MarshalProto encodes m, refusing results over MaxMessageBytes.
func MarshalProto(m proto.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, Errorf(Internal, "marshal %T: %v", m, err)
	}
	if len(b) > MaxMessageBytes {
		return nil, Errorf(ResourceExhausted, "message %T is %d bytes, limit %d", m, len(b), MaxMessageBytes)
	}
	return b, nil
}

// UnmarshalProto decodes b into a new M.
func UnmarshalProto[M proto.Message](b []byte) (M, error) {
	m := newProto[M]()
	if len(b) > MaxMessageBytes {
		return m, Errorf(ResourceExhausted, "message is %d bytes, limit %d", len(b), MaxMessageBytes)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return m, Errorf(InvalidArgument, "decode %T: %v", m, err)
	}
	return m, nil
}

// MarshalJSON encodes v as JSON, refusing results over MaxMessageBytes. It is
// the control-plane counterpart of MarshalProto.
func MarshalJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, Errorf(Internal, "marshal %T: %v", v, err)
	}
	if len(b) > MaxMessageBytes {
		return nil, Errorf(ResourceExhausted, "message %T is %d bytes, limit %d", v, len(b), MaxMessageBytes)
	}
	return b, nil
}

// UnmarshalJSON decodes exactly one JSON value from b into a new T. Unknown
// fields and trailing data are refused: a peer sending fields we do not know
// is a version mismatch worth reporting, not silently ignoring.
func UnmarshalJSON[T any](b []byte) (T, error) {
	var v T
	if len(b) > MaxMessageBytes {
		return v, Errorf(ResourceExhausted, "message is %d bytes, limit %d", len(b), MaxMessageBytes)
	}
	if err := DecodeJSON(bytes.NewReader(b), &v); err != nil {
		return v, err
	}
	return v, nil
}

// DecodeJSON decodes exactly one JSON value from r into v (a pointer),
// refusing unknown fields and trailing data. Errors are InvalidArgument.
func DecodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(InvalidArgument, "decode %T: %v", v, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(InvalidArgument, "decode %T: trailing data after JSON value", v)
	}
	return nil
}
