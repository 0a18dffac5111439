package net

import (
	"context"

	"google.golang.org/protobuf/proto"
)

// CallProto makes a unary call with protobuf messages. Resp is the generated
// response pointer type: resp, err := net.CallProto[*pb.GetResp](ctx, c, m, req).
func CallProto[Resp proto.Message](ctx context.Context, c Conn, method string, req proto.Message) (Resp, error) {
	var zero Resp
	b, err := MarshalProto(req)
	if err != nil {
		return zero, err
	}
	out, err := c.Call(ctx, method, b)
	if err != nil {
		return zero, err
	}
	return UnmarshalProto[Resp](out)
}

// CallJSON makes a unary call with JSON-encoded Go values.
func CallJSON[Resp any](ctx context.Context, c Conn, method string, req any) (Resp, error) {
	var zero Resp
	b, err := MarshalJSON(req)
	if err != nil {
		return zero, err
	}
	out, err := c.Call(ctx, method, b)
	if err != nil {
		return zero, err
	}
	return UnmarshalJSON[Resp](out)
}

// StreamProto opens a stream whose messages are protobuf: the client sends
// Out messages and receives In messages.
func StreamProto[Out, In proto.Message](ctx context.Context, c Conn, method string) (*ClientStreamOf[Out, In], error) {
	s, err := c.Stream(ctx, method)
	if err != nil {
		return nil, err
	}
	return &ClientStreamOf[Out, In]{Raw: s}, nil
}

// ClientStreamOf is a typed view of a ClientStream.
type ClientStreamOf[Out, In proto.Message] struct {
	Raw ClientStream
}

// Send encodes and sends one message.
func (s *ClientStreamOf[Out, In]) Send(m Out) error {
	b, err := MarshalProto(m)
	if err != nil {
		return err
	}
	return s.Raw.Send(b)
}

// Recv receives and decodes the next message; io.EOF when the handler ended
// the stream cleanly.
func (s *ClientStreamOf[Out, In]) Recv() (In, error) {
	b, err := s.Raw.Recv()
	if err != nil {
		var zero In
		return zero, err
	}
	return UnmarshalProto[In](b)
}

// CloseSend tells the server no more messages will be sent.
func (s *ClientStreamOf[Out, In]) CloseSend() error { return s.Raw.CloseSend() }
