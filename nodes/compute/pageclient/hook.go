package pageclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// ErrNotify: a notify-attach body that names no usable shard map (shards
// missing or repeated, a stripe without shards).
var ErrNotify = errors.New("pageclient: bad notify-attach")

// MaxNotifyShards bounds the shards one notification may name (a shard
// count is a u8).
const MaxNotifyShards = 255

// Resolver answers the page service address of a pageserver by node id.
type Resolver func(ctx context.Context, nodeID uint64) (string, error)

// MapFromNotify is the shard map a notify-attach body describes: with a
// stripe size, a tenant of len(Shards) shards, shard n at Shards[i] where
// ShardNumber is n; without one, the unsharded tenant (exactly one shard,
// number 0). resolve turns node ids into page service addresses.
func MapFromNotify(ctx context.Context, req storconapi.NotifyAttachRequest, resolve Resolver) (ShardMap, error) {
	n := len(req.Shards)
	if n == 0 || n > MaxNotifyShards {
		return ShardMap{}, fmt.Errorf("%w: %d shards", ErrNotify, n)
	}
	m := ShardMap{Addrs: make([]string, n)}
	if req.StripeSize != nil {
		m.Count, m.StripeSize = shard.ShardCount(n), *req.StripeSize
	} else if n != 1 {
		return ShardMap{}, fmt.Errorf("%w: %d shards without a stripe size", ErrNotify, n)
	}
	for _, s := range req.Shards {
		i := int(s.ShardNumber)
		if i >= n || m.Addrs[i] != "" {
			return ShardMap{}, fmt.Errorf("%w: shard number %d out of range or repeated (%d shards)", ErrNotify, i, n)
		}
		addr, err := resolve(ctx, s.NodeID)
		if err != nil {
			return ShardMap{}, fmt.Errorf("pageclient: shard %d on node %d: %w", i, s.NodeID, err)
		}
		m.Addrs[i] = addr
	}
	return m, m.Validate()
}

// HookReceiver is the compute's end of the storage controller's
// notify-attach: each notification for the client's tenant becomes a shard
// map that UpdateShardMap swaps in. Answers, as the controller reads them:
// 200 applied (or unchanged); 401 a wrong token; 404 another tenant; 400 a
// malformed body; 412 a map the client refuses (a shrink); 503 a node
// whose address cannot be resolved yet (the controller retries).
type HookReceiver struct {
	client  *Client
	token   string
	resolve Resolver
	log     *slog.Logger

	mu       sync.Mutex
	received int
}

// NewHookReceiver returns the receiver for c's tenant. token, when not
// empty, is required as "Bearer <token>".
func NewHookReceiver(c *Client, token string, resolve Resolver) *HookReceiver {
	return &HookReceiver{client: c, token: token, resolve: resolve, log: c.log}
}

// Register adds PUT storconapi.NotifyAttachPath to rt.
func (h *HookReceiver) Register(rt *net.Router) {
	net.HandleJSON(rt, "PUT "+storconapi.NotifyAttachPath, 200, h.serve)
}

// Received is how many notifications for the tenant were applied or found
// unchanged.
func (h *HookReceiver) Received() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.received
}

func (h *HookReceiver) serve(ctx context.Context, hr *net.HTTPRequest, req storconapi.NotifyAttachRequest) (struct{}, error) {
	if h.token != "" && hr.Authorization != "Bearer "+h.token {
		return struct{}{}, net.Errorf(net.Unauthenticated, "pageclient: notify-attach: missing or wrong token")
	}
	if req.TenantID != h.client.cfg.Tenant {
		return struct{}{}, net.Errorf(net.NotFound, "pageclient: notify-attach for tenant %s, this compute reads %s", req.TenantID, h.client.cfg.Tenant)
	}
	m, err := MapFromNotify(ctx, req, h.resolve)
	switch {
	case errors.Is(err, ErrNotify) || errors.Is(err, ErrShardMap):
		return struct{}{}, net.Wrap(net.InvalidArgument, err)
	case err != nil:
		return struct{}{}, net.Wrap(net.Unavailable, err)
	}
	if m.String() != h.client.ShardMap().String() {
		if err := h.client.UpdateShardMap(m); err != nil {
			return struct{}{}, net.Wrap(net.FailedPrecondition, err)
		}
	}
	h.mu.Lock()
	h.received++
	h.mu.Unlock()
	return struct{}{}, nil
}

// ControllerResolver resolves node ids from the storage controller's node
// list (each pageserver registers its page service address there), asking
// again only for an id it has not seen. Safe for concurrent use.
func ControllerResolver(cli storconapi.Client) Resolver {
	var mu sync.Mutex
	known := map[uint64]string{}
	return func(ctx context.Context, id uint64) (string, error) {
		mu.Lock()
		addr, ok := known[id]
		mu.Unlock()
		if ok {
			return addr, nil
		}
		nodes, err := cli.ListNodes(ctx)
		if err != nil {
			return "", fmt.Errorf("pageclient: listing the controller's nodes: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, n := range nodes {
			if a := pageAddr(n); a != "" {
				known[n.ID] = a
			}
		}
		if addr, ok := known[id]; ok {
			return addr, nil
		}
		return "", fmt.Errorf("pageclient: node %d has no page service address at the controller", id)
	}
}

// pageAddr is where a node serves pages: its gRPC address, else its
// libpq one.
func pageAddr(n storconapi.NodeDescribe) string {
	switch {
	case n.ListenGRPCAddr != "" && n.ListenGRPCPort != 0:
		return storconapi.JoinHostPort(n.ListenGRPCAddr, n.ListenGRPCPort)
	case n.ListenPGAddr != "" && n.ListenPGPort != 0:
		return storconapi.JoinHostPort(n.ListenPGAddr, n.ListenPGPort)
	}
	return ""
}
