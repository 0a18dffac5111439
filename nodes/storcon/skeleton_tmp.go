package storcon

import (
	"context"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

type shardEntry struct{ st *placement.ShardState }
type nodeEntry struct{}
type tenantEntry struct{}
type nodeOp struct{}

func (s *Service) startup(ctx context.Context) {
	s.lock()
	s.state.ready = true
	s.changed.Broadcast()
	s.mu.Unlock()
}

func (s *Service) registerAPI() {
	net.HandleJSON(s.router, storconapi.RouteStatus, 200, func(ctx context.Context, r *net.HTTPRequest, _ struct{}) (storconapi.Status, error) {
		return storconapi.Status{Ready: s.Ready()}, nil
	})
}
