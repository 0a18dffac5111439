package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
)

// The spies are wrappers the scenario puts where it watches: each
// pageserver's object store (storeSpy) and control-plane client (cpSpy),
// and the controller's client for each pageserver's management API
// (psSpy). They see every call as it starts and every answer as it
// arrives, pass both to the observer's checkers, and never change either.
// psSpy also injects one network fault: a location_config delivered a
// second time, late (replay).

// storeSpy is pageserver node's object store.
type storeSpy struct {
	c     *cluster
	inner objstore.Store
	node  int
}

func (s storeSpy) Put(ctx context.Context, key string, data []byte, opts objstore.PutOptions) error {
	o := s.c.o
	k, ok := parseKey(key)
	if ok {
		o.beforePut(s.node, k, data)
	}
	err := s.inner.Put(ctx, key, data, opts)
	if ok && err == nil {
		o.putDone(s.node, k, data)
	}
	return err
}

func (s storeSpy) Get(ctx context.Context, key string) ([]byte, error) {
	data, err := s.inner.Get(ctx, key)
	if k, ok := parseKey(key); ok && err == nil && k.index {
		s.c.o.indexLoaded(s.node, k)
	}
	return data, err
}

func (s storeSpy) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	return s.inner.GetRange(ctx, key, offset, length)
}

func (s storeSpy) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	return s.inner.Head(ctx, key)
}

func (s storeSpy) List(ctx context.Context, prefix string, opts objstore.ListOptions) (objstore.Page, error) {
	return s.inner.List(ctx, prefix, opts)
}

func (s storeSpy) Delete(ctx context.Context, keys []string) error {
	for _, key := range keys {
		s.c.o.beforeDelete(s.node, key)
	}
	return s.inner.Delete(ctx, keys)
}

func (s storeSpy) Copy(ctx context.Context, src, dst string) error {
	if _, ok := parseKey(dst); ok {
		// Nothing in this scenario copies a timeline's objects; the
		// checkers would have to model it (an index could arrive
		// unchecked).
		s.c.o.fail(fmt.Errorf("%w: pageserver %d copied %q to %q, which the spies do not model", errUndecodableTraffic, s.node, src, dst))
	}
	return s.inner.Copy(ctx, src, dst)
}

// cpSpy is pageserver node's client for the controller: it sees the
// generations re-attach hands out and every validation's answer.
type cpSpy struct {
	c     *cluster
	inner net.HTTPClient
	node  int
}

func (s cpSpy) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	o := s.c.o
	switch {
	case req.Method+" "+req.Path == storconapi.RouteReAttach:
		o.reAttachSent(s.node)
		st, err := s.inner.Do(ctx, req, in, out)
		if err == nil {
			resp, derr := pagecheck.DecodeAs[storconapi.ReAttachResponse](out)
			if derr != nil {
				o.fail(fmt.Errorf("%w: re-attach answer: %v", errUndecodableTraffic, derr))
			}
			o.reAttached(s.node, resp)
		}
		return st, err
	case req.Method+" "+req.Path == storconapi.RouteValidate:
		body, derr := pagecheck.DecodeAs[storconapi.ValidateRequest](in)
		if derr != nil {
			o.fail(fmt.Errorf("%w: validate request: %v", errUndecodableTraffic, derr))
		}
		sent := o.tick()
		st, err := s.inner.Do(ctx, req, in, out)
		if err == nil {
			resp, derr := pagecheck.DecodeAs[storconapi.ValidateResponse](out)
			if derr != nil {
				o.fail(fmt.Errorf("%w: validate answer: %v", errUndecodableTraffic, derr))
			}
			o.validated(s.node, body, resp, sent)
		}
		return st, err
	}
	return s.inner.Do(ctx, req, in, out)
}

// psSpy is the controller's client for pageserver node's management API:
// it sees the generations and modes location_config hands out and which
// the pageserver acknowledged, and replays some of them late.
type psSpy struct {
	c     *cluster
	inner net.HTTPClient
	node  int
}

func (s psSpy) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	id, ok := tsidOfPath(req.Path, "/location_config")
	if !ok || req.Method != "PUT" {
		return s.inner.Do(ctx, req, in, out)
	}
	o := s.c.o
	conf, err := pagecheck.DecodeAs[pageapi.LocationConfig](in)
	if err != nil {
		o.fail(fmt.Errorf("%w: location_config body: %v", errUndecodableTraffic, err))
		return s.inner.Do(ctx, req, in, out)
	}
	seq := o.locationSent(s.node, id, conf)
	st, err := s.inner.Do(ctx, req, in, out)
	if err == nil {
		o.locationAcked(s.node, id, conf, seq)
		if conf.Mode.Attached() {
			s.c.maybeReplay(s.node, id, conf)
		}
	}
	return st, err
}

func tsidOfPath(path, suffix string) (shard.TenantShardID, bool) {
	if !strings.HasPrefix(path, "/v1/tenant/") || !strings.HasSuffix(path, suffix) {
		return shard.TenantShardID{}, false
	}
	id, err := shard.ParseTenantShardID(strings.TrimSuffix(strings.TrimPrefix(path, "/v1/tenant/"), suffix))
	return id, err == nil
}

// maybeReplay delivers conf to the pageserver a second time, a few
// seconds later, with the seed's probability while faults are on: a
// request a slow network path held back (the controller has long moved
// on). A correct pageserver attaches with that older generation if it
// holds none newer, loads no index above it, and the controller's
// validation keeps that stale attachment from deleting anything.
func (c *cluster) maybeReplay(node int, id shard.TenantShardID, conf pageapi.LocationConfig) {
	if !c.safety || c.replayProb == 0 || c.o.replayRand.Float64() >= c.replayProb {
		return
	}
	delay := c.o.replayDelay()
	w := c.w
	w.Go("replay", func(context.Context) {
		w.Sleep(delay)
		if !c.safety || !c.o.movedOn(id, *conf.Generation) {
			return // only a generation the shard has left behind: a replay of the current one would change its mode behind the controller's back
		}
		env := c.op.Env
		ctx, cancel := clock.WithTimeout(env.Clock, context.Background(), opTimeout)
		defer cancel()
		seq := c.o.locationSent(node, id, conf)
		w.Log().Info("replay: a late location_config", "node", node, "tenant_shard_id", id, "mode", conf.Mode, "generation", *conf.Generation)
		_, err := net.DialHTTP{Net: env.Net, Addr: pagecheck.PageserverHTTPAddr(node)}.Do(ctx,
			&net.HTTPRequest{Method: "PUT", Path: "/v1/tenant/" + id.String() + "/location_config"}, conf, nil)
		if err == nil {
			c.o.locationAcked(node, id, conf, seq)
		}
		c.o.countReplay(err)
	})
}

// objKey is an object key of a timeline of the tenant, parsed.
type objKey struct {
	key   string
	id    shard.TenantShardID
	tl    shard.TimelineID
	index bool
	gen   layer.Generation // an index's
	layer layer.Name       // a layer's (with the generation that wrote it)
}

// parseKey parses "tenants/<tenant shard>/timelines/<timeline>/<object>"
// (the layout without prefix, remote.Layout{}).
func parseKey(key string) (objKey, bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 5 || parts[0] != "tenants" || parts[2] != "timelines" {
		return objKey{}, false
	}
	id, err := shard.ParseTenantShardID(parts[1])
	if err != nil {
		return objKey{}, false
	}
	tl, err := shard.ParseTimelineID(parts[3])
	if err != nil {
		return objKey{}, false
	}
	k := objKey{key: key, id: id, tl: tl}
	if rest, ok := strings.CutPrefix(parts[4], "index_part.json"); ok {
		k.index = true
		if rest != "" {
			g, err := strconv.ParseUint(strings.TrimPrefix(rest, "-"), 16, 32)
			if err != nil || !strings.HasPrefix(rest, "-") {
				return objKey{}, false
			}
			k.gen = layer.Generation(g)
		}
		return k, true
	}
	n, err := layer.ParseName(parts[4])
	if err != nil {
		return objKey{}, false
	}
	k.layer = n
	return k, true
}
