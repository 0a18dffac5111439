package skapi

import (
	"context"
	"fmt"
	"path"

	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/net"
)

// SegmentName is the file and object name of WAL segment segno: 16
// upper-case hex digits.
func SegmentName(segno uint64) string { return fmt.Sprintf("%016X", segno) }

// RemoteSegmentKey is the object key of a timeline's offloaded WAL segment
// (below the store's prefix): wal/<tenant>/<timeline>/<segno %016X>.
func RemoteSegmentKey(tenant, timeline string, segno uint64) string {
	return path.Join("wal", tenant, timeline, SegmentName(segno))
}

// Ref names a timeline on the wire.
func Ref(tenant, timeline string) *TimelineRef {
	return &TimelineRef{TenantId: tenant, TimelineId: timeline}
}

// Status asks a safekeeper for a timeline's state.
func Status(ctx context.Context, c net.Conn, tenant, timeline string) (*TimelineStatus, error) {
	return net.CallProto[*TimelineStatus](ctx, c, MethodStatus, Ref(tenant, timeline))
}

// ReadWal reads flushed WAL in whole frames from req.StartLsn towards
// req.EndLsn (one bounded chunk; call again from the end of what came back).
func ReadWal(ctx context.Context, c net.Conn, req *ReadWalRequest) (*ReadWalResponse, error) {
	return net.CallProto[*ReadWalResponse](ctx, c, MethodReadWal, req)
}

// OpenStreamWal subscribes to a timeline's committed WAL from start.
func OpenStreamWal(ctx context.Context, c net.Conn, tenant, timeline string, start uint64) (*net.ClientStreamOf[*StreamWalRequest, *WalChunk], error) {
	s, err := net.StreamProto[*StreamWalRequest, *WalChunk](ctx, c, MethodStreamWal)
	if err != nil {
		return nil, err
	}
	if err := s.Send(&StreamWalRequest{Timeline: Ref(tenant, timeline), StartLsn: start}); err != nil {
		return nil, err
	}
	return s, nil
}

// ProposeStream is a proposer's side of a Propose stream, speaking
// engine/skproto messages.
type ProposeStream struct {
	s *net.ClientStreamOf[*ProposerMessage, *AcceptorMessage]
}

// OpenPropose opens a Propose stream; the first message sent must be a
// skproto.Greeting.
func OpenPropose(ctx context.Context, c net.Conn) (*ProposeStream, error) {
	s, err := net.StreamProto[*ProposerMessage, *AcceptorMessage](ctx, c, MethodPropose)
	if err != nil {
		return nil, err
	}
	return &ProposeStream{s: s}, nil
}

// Send sends one proposer message.
func (p *ProposeStream) Send(m skproto.Msg) error {
	pb, err := ProposerToPB(m)
	if err != nil {
		return err
	}
	return p.s.Send(pb)
}

// Recv receives the acceptor's next answer.
func (p *ProposeStream) Recv() (skproto.Msg, error) {
	pb, err := p.s.Recv()
	if err != nil {
		return nil, err
	}
	return AcceptorFromPB(pb)
}
