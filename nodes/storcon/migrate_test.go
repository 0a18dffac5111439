package storcon

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/persist"
)

// sentConf is one location_config the controller sent and a pageserver
// accepted.
type sentConf struct {
	node uint64
	id   shard.TenantShardID
	conf pageapi.LocationConfig
}

// recorder wraps the controller's pageserver clients: it records every
// accepted location_config in order and checks, before each one that
// carries a generation, that the store has issued it (the generation is
// persisted before any attach that needs it).
type recorder struct {
	sent  []sentConf
	store func() persist.Store
	bad   []string
	// calls logs every other request in order with the configs: "<node>
	// <method> <path>?wait_ms=… <status>" (status 0: failed), each after
	// its answer. rewrite, if set, may change a request before it is sent.
	calls   []string
	rewrite func(node uint64, r *net.HTTPRequest)
	// answered, if set, sees every other request's answer.
	answered func(node uint64, r *net.HTTPRequest, status int, out any)
}

type recordingClient struct {
	r    *recorder
	node uint64
	hc   net.HTTPClient
}

func (rc recordingClient) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	conf, isConf := in.(pageapi.LocationConfig)
	var id shard.TenantShardID
	if isConf {
		var err error
		if id, err = shard.ParseTenantShardID(strings.Split(req.Path, "/")[3]); err != nil {
			return 0, err
		}
		if conf.Generation != nil {
			if st := rc.r.store(); st != nil {
				g, _, err := st.Generation(ctx, id)
				if err == nil && uint32(g) < *conf.Generation {
					rc.r.bad = append(rc.r.bad, fmt.Sprintf("%s sent to node %d with generation %d, store issued %d", id, rc.node, *conf.Generation, g))
				}
			}
		}
	}
	if rc.r.rewrite != nil && !isConf {
		c := *req
		rc.r.rewrite(rc.node, &c)
		req = &c
	}
	status, err := rc.hc.Do(ctx, req, in, out)
	if err == nil && isConf {
		rc.r.sent = append(rc.r.sent, sentConf{node: rc.node, id: id, conf: conf})
		rc.r.calls = append(rc.r.calls, fmt.Sprintf("%d %s", rc.node, conf.Mode))
	}
	if rc.r.answered != nil && !isConf {
		rc.r.answered(rc.node, req, status, out)
	}
	if !isConf && req.Method != "GET" {
		line := fmt.Sprintf("%d %s %s", rc.node, req.Method, req.Path)
		if w, ok := req.Query[pageapi.SecondaryDownloadWaitParam]; ok {
			line += "?" + pageapi.SecondaryDownloadWaitParam + "=" + w
		}
		rc.r.calls = append(rc.r.calls, fmt.Sprintf("%s %d", line, status))
	}
	return status, err
}

// runRecorded runs a cluster whose controller's pageserver calls go
// through a recorder.
func runRecorded(t *testing.T, nPS int, cfg Config, body func(c *cluster, r *recorder)) {
	t.Helper()
	runRecordedOpts(t, nPS, cfg, clusterOpts{}, body)
}

// runRecordedOpts is runRecorded with more cluster options (its prep is
// replaced).
func runRecordedOpts(t *testing.T, nPS int, cfg Config, o clusterOpts, body func(c *cluster, r *recorder)) {
	t.Helper()
	r := &recorder{}
	var c0 *cluster
	r.store = func() persist.Store {
		if c0 == nil || c0.sc == nil {
			return nil
		}
		return c0.sc.store
	}
	o.prep = func(env node.Env, cfg *Config) {
		cfg.DialPageserver = func(addr string) net.HTTPClient {
			var n uint64
			fmt.Sscanf(addr, "ps-%d:", &n)
			return recordingClient{r: r, node: n, hc: net.DialHTTP{Net: env.Net, Addr: addr}}
		}
	}
	runClusterFull(t, nPS, cfg, o, func(c *cluster) {
		c0 = c
		body(c, r)
	})
}

// heldAttached replays the recorded confs of shard id and reports the
// first moment no node held it in an attached mode after one had.
func heldAttached(sent []sentConf, id shard.TenantShardID) error {
	held := map[uint64]pageapi.LocationMode{}
	seen := false
	for i, s := range sent {
		if s.id != id {
			continue
		}
		held[s.node] = s.conf.Mode
		any := false
		for _, n := range slices.Sorted(maps.Keys(held)) {
			any = any || held[n].Attached()
		}
		if seen && !any {
			return fmt.Errorf("after call %d (%s to node %d) no node holds %s attached", i, s.conf.Mode, s.node, id)
		}
		seen = seen || any
	}
	return nil
}

func TestMigrationStepsAndOrder(t *testing.T) {
	for _, bug := range []bool{false, true} {
		t.Run(fmt.Sprintf("DrainDetachFirst=%v", bug), func(t *testing.T) {
			cfg := Config{Bugs: Bugs{DrainDetachFirst: bug}}
			runRecorded(t, 2, cfg, func(c *cluster, r *recorder) {
				tn := tenantID(95)
				c.create(tn, 0, nil)
				id := shard.UnshardedID(tn)
				from, _ := c.attachedNode(id)
				to := from%2 + 1
				// A plain migrate: the nine steps in order (the bug is a
				// drain's only).
				start := len(r.sent)
				if err := c.api.Migrate(c.ctx, id, to); err != nil {
					t.Fatal(err)
				}
				waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
				var got []string
				for _, s := range r.sent[start:] {
					got = append(got, fmt.Sprintf("%d:%s", s.node, s.conf.Mode))
				}
				want := []string{
					fmt.Sprintf("%d:AttachedStale", from), fmt.Sprintf("%d:AttachedMulti", to),
					fmt.Sprintf("%d:Secondary", from), fmt.Sprintf("%d:AttachedSingle", to),
					fmt.Sprintf("%d:Detached", from),
				}
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("migration sent %v, want %v", got, want)
				}
				// A drain of the node it is on now.
				if err := c.api.Drain(c.ctx, to, false); err != nil {
					t.Fatal(err)
				}
				waitFor(c, time.Minute, "drained", func() error {
					if n, _ := c.attachedNode(id); n == to {
						return fmt.Errorf("still on %d", to)
					}
					return c.converged(tn)
				})
				err := heldAttached(r.sent, id)
				if bug != (err != nil) {
					t.Errorf("bug %v: gap in attachment: %v", bug, err)
				}
				if len(r.bad) > 0 {
					t.Errorf("generations sent before the store issued them: %v", r.bad)
				}
			})
		})
	}
}

// TestGenerationAlwaysStoredFirst runs create, migrate, failover and
// re-attach through the recorder: no location config ever carries a
// generation the store has not issued.
func TestGenerationAlwaysStoredFirst(t *testing.T) {
	runRecorded(t, 3, Config{}, func(c *cluster, r *recorder) {
		p := placement.Attached(1)
		c.create(tenantID(96), 3, &p)
		c.create(tenantID(97), 0, nil)
		id := shard.UnshardedID(tenantID(97))
		from, _ := c.attachedNode(id)
		if err := c.api.Migrate(c.ctx, id, from%3+1); err != nil {
			t.Fatal(err)
		}
		c.w.Crash(psName(1), false)
		c.w.Sleep(45 * time.Second)
		c.w.Restart(psName(1))
		c.waitNodes(3)
		for _, tn := range []shard.TenantID{tenantID(96), tenantID(97)} {
			waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
			c.checkPageservers(tn)
		}
		if len(r.sent) < 10 {
			t.Errorf("only %d location configs recorded", len(r.sent))
		}
		if len(r.bad) > 0 {
			t.Errorf("generations sent before the store issued them: %v", r.bad)
		}
	})
}
