package storcon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// lostAttachAnswer applies a pageserver call and then loses its answer,
// for the first lost attached location_config calls.
type lostAttachAnswer struct {
	lost  *int
	inner net.HTTPClient
}

func (c lostAttachAnswer) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	st, err := c.inner.Do(ctx, req, in, out)
	if err != nil || *c.lost == 0 || req.Method != "PUT" || !strings.HasSuffix(req.Path, "/location_config") {
		return st, err
	}
	if conf, ok := in.(pageapi.LocationConfig); !ok || !conf.Mode.Attached() {
		return st, err
	}
	*c.lost--
	return 0, net.Errorf(net.Unavailable, "the answer was lost")
}

// TestAttachWithLostAnswerIsNotified: a tenant's first attach is applied
// by the pageserver but every answer is lost; the reconcile fails, and the
// next one finds the attachment in place. Compute must still be told where
// the tenant is.
func TestAttachWithLostAnswerIsNotified(t *testing.T) {
	lost := 0
	prep := func(env node.Env, cfg *Config) {
		cfg.DialPageserver = func(addr string) net.HTTPClient {
			return lostAttachAnswer{lost: &lost, inner: net.DialHTTP{Net: env.Net, Addr: addr}}
		}
	}
	cfg := Config{ReconcileAllInterval: time.Second, LocationConfigBackoff: 100 * time.Millisecond}
	runClusterFull(t, 2, cfg, clusterOpts{prep: prep}, func(c *cluster) {
		tn := tenantID(92)
		lost = cfg.withDefaults().LocationConfigRetries // every attempt of the first reconcile
		_, _ = c.api.CreateTenant(c.ctx, createReq(tn)) // its first reconcile fails
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		if lost != 0 {
			t.Fatalf("%d answers still to lose: the scenario did not happen", lost)
		}
		waitFor(c, time.Minute, "compute told", func() error { return c.notified(tn) })
	})
}
