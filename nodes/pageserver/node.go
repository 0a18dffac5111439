package pageserver

import (
	"fmt"

	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/jwtauth"
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
// (over the seam: in real mode the daemon serves Router() over HTTP).
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
	n.tenants = newTenantManager(env.Clock, env.Disk, env.Log, cfg)
	if err := n.tenants.load(); err != nil {
		return nil, err
	}
	ps, err := newPageService(env.Clock, env.Log, env.Metrics, n.tasks, cfg.PageService, n.tenants, n.auth)
	if err != nil {
		return nil, err
	}
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

// Close stops serving and closes the tenants (graceful drain and the task
// registry come with the shutdown work of the pageserver issue).
func (n *Node) Close() {
	n.pageLis.Close()
	if n.httpLis != nil {
		n.httpLis.Close()
	}
	n.tenants.close()
}
