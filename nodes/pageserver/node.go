package pageserver

import (
	"context"
	"fmt"
	"time"

	"github.com/stratadb/strata/clock"

	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
	"github.com/stratadb/strata/nodes/node"
)

// Node is a running pageserver.
type Node struct {
	env     node.Env
	cfg     Config
	auth    *jwtauth.Verifier
	tenants *tenantManager
	tasks   *taskRegistry
	pages   *PageService
	router  *net.Router

	pageLis, httpLis net.Listener
}

// Start loads the node's tenant shards from env.Disk and starts serving the
// page service on cfg.PageAddr and the management API on cfg.HTTPAddr
// (over the seam: in real mode the daemon serves Router() over HTTP). With
// cfg.ControlPlane set it first re-attaches to the storage controller
// (reattach.go) and fails, having loaded nothing, if the controller cannot
// be reached within cfg.ReAttachRetries retries.
func Start(env node.Env, cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{env: env, cfg: cfg, router: net.NewRouter(), tasks: newTaskRegistry(env.Clock)}
	if len(cfg.AuthKeys) > 0 {
		v, err := jwtauth.NewVerifier(cfg.AuthKeys, env.Clock.Now)
		if err != nil {
			return nil, err
		}
		n.auth = v
	}
	n.tenants = newTenantManager(env.Clock, env.Disk, env.Log, n.tasks, cfg)
	wm, err := newWALMetrics(env.Metrics)
	if err != nil {
		return nil, err
	}
	if n.tenants.layers, err = newLayerCache(env.Metrics, cfg.MaxOpenLayerFiles); err != nil {
		return nil, err
	}
	if n.tenants.splitMetrics, err = newSplitMetrics(env.Metrics); err != nil {
		return nil, err
	}
	n.tenants.wal = walEnv{clk: env.Clock, net: env.Net}
	n.tenants.walMetrics = wm
	if cfg.WALReceiver.BrokerAddr != "" {
		n.tenants.broker = brokerapi.NewClient(env.Net, env.Clock, cfg.WALReceiver.BrokerAddr, cfg.WALReceiver.CallTimeout)
	}
	if env.Store != nil {
		if err := n.startRemote(); err != nil {
			return nil, err
		}
	}
	if err := n.tenants.load(); err != nil {
		n.tasks.stop(context.Background(), nodeScope())
		return nil, err
	}
	ps, err := newPageService(env.Clock, env.Log, env.Metrics, n.tasks, cfg.PageService, n.tenants, n.auth)
	if err != nil {
		return nil, err
	}
	ps.bugs = cfg.Bugs
	n.pages = ps
	n.registerMgmt()

	pm := net.NewMux()
	ps.Register(pm)
	if n.pageLis, err = env.Net.Listen(cfg.PageAddr, pm); err != nil {
		n.tenants.close()
		return nil, fmt.Errorf("pageserver: page service: %w", err)
	}
	if cfg.HTTPAddr != "" {
		hm := net.NewMux()
		n.router.Register(hm)
		if n.httpLis, err = env.Net.Listen(cfg.HTTPAddr, hm); err != nil {
			n.pageLis.Close()
			n.tenants.close()
			return nil, fmt.Errorf("pageserver: management API: %w", err)
		}
	}
	env.Log.Info("pageserver started", "node_id", cfg.NodeID, "page", n.pageLis.Addr(), "http", n.HTTPAddr(), "tenant_shards", n.tenants.count())
	return n, nil
}

// Router is the management API, for a daemon to serve over real HTTP.
func (n *Node) Router() *net.Router { return n.router }

// PageAddr and HTTPAddr are the bound addresses.
func (n *Node) PageAddr() string { return n.pageLis.Addr() }

// HTTPAddr is the bound management address over the seam ("" when the
// daemon serves the Router over HTTP itself).
func (n *Node) HTTPAddr() string {
	if n.httpLis == nil {
		return ""
	}
	return n.httpLis.Addr()
}

// Shutdown stops the node in order: refuse new page requests
// (Unavailable), let in-flight streams finish for up to drain, then end
// them; stop WAL receivers; flush every timeline so a restart resumes from
// durable layers; stop background work; close the listeners and the
// tenants. It returns the names of tasks that outlived it (none, unless a
// task ignores its context), and logs them.
func (n *Node) Shutdown(ctx context.Context, drain time.Duration) []string {
	log := n.env.Log
	n.pages.drain()
	dctx, cancel := clock.WithTimeout(n.env.Clock, ctx, drain)
	if !n.tasks.wait(dctx, nodeScope(), taskPageStream) {
		log.Info("drain timeout: ending open page streams", "drain", drain)
	}
	cancel()
	left := n.tasks.stop(ctx, nodeScope(), taskPageStream, taskPageRecv)
	left = append(left, n.tasks.stop(ctx, nodeScope(), taskWALReceiver)...)
	n.tenants.flushAll()
	n.tenants.drainUploads(ctx)
	left = append(left, n.tasks.stop(ctx, nodeScope(), taskBackground)...)
	n.pageLis.Close()
	if n.httpLis != nil {
		n.httpLis.Close()
	}
	n.tenants.close()
	if n.tenants.broker != nil {
		_ = n.tenants.broker.Close()
	}
	left = append(left, n.tasks.stop(ctx, nodeScope())...)
	if len(left) > 0 {
		log.Error("tasks still running after shutdown", "tasks", left)
	} else {
		log.Info("pageserver stopped")
	}
	return left
}

// Close stops the node at once (Shutdown without a drain).
func (n *Node) Close() { n.Shutdown(context.Background(), 0) }
