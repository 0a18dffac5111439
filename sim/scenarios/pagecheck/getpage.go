package pagecheck

import (
	"context"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// GetPage reads one block of rel at "at" over conn on a fresh GetPages
// stream, addressed as ctx's pageapi target says: the raw page service,
// without a client's routing or retries (probes and final reads).
func GetPage(ctx context.Context, conn net.Conn, rel keys.RelTag, at lsn.LSN, blk uint32) (*pageapi.GetPageResponse, error) {
	s, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](ctx, conn, pageapi.PageService_GetPages_FullMethodName)
	if err != nil {
		return nil, err
	}
	if err := s.Send(&pageapi.GetPageRequest{RequestId: &pageapi.RequestID{Id: 1}, ReadLsn: &pageapi.ReadLsn{RequestLsn: uint64(at)},
		Rel:         &pageapi.RelTag{SpcOid: rel.SpcNode, DbOid: rel.DbNode, RelNumber: rel.RelNode, ForkNumber: uint32(rel.ForkNum)},
		BlockNumber: []uint32{blk}}); err != nil {
		return nil, err
	}
	resp, err := s.Recv()
	_ = s.CloseSend()
	return resp, err
}

// PageOf is the one image of a single-block response (nil otherwise).
func PageOf(r *pageapi.GetPageResponse) []byte {
	if len(r.Page) != 1 {
		return nil
	}
	return r.Page[0].Image
}
