package split

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// maxTargeted bounds the targeted controller crashes of one seed.
const maxTargeted = 3

// observer holds what the spies saw and the first violation.
type observer struct {
	c  *cluster
	mu sync.Mutex
	// gens is the highest generation sent to each shard in an attached
	// location_config.
	gens map[shard.TenantShardID]uint32
	// notified is the highest shard count a notification named.
	notified int
	notifies int
	splits   int // shard_split calls answered OK
	err      error
}

func newObserver(c *cluster) *observer {
	return &observer{c: c, gens: map[shard.TenantShardID]uint32{}, notified: -1}
}

func (o *observer) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
	}
}

func (o *observer) failure() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// roundTrip gives the body as the wire carries it.
func roundTrip[T any](v any) (T, error) {
	var out T
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	return out, err
}

// attached checks a generation sent to id: never below one sent to id
// before, and a shard seen for the first time (a split child) never below
// its parent's.
func (o *observer) attached(id shard.TenantShardID, gen uint32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	prev, seen := o.gens[id]
	if seen && gen < prev {
		o.setErr(fmt.Errorf("%w: shard %s sent generation %d after %d", ErrGeneration, id, gen, prev))
	}
	if !seen {
		for pid, pg := range o.gens {
			if pid.Shard.Count < id.Shard.Count && int(id.Shard.Number)%max(int(pid.Shard.Count), 1) == int(pid.Shard.Number) && gen < pg {
				o.setErr(fmt.Errorf("%w: child %s starts at generation %d, below its parent %s's %d", ErrGeneration, id, gen, pid, pg))
			}
		}
	}
	o.gens[id] = max(prev, gen)
}

func (o *observer) setErr(err error) {
	if o.err == nil {
		o.err = err
	}
}

// notify checks a notification as it is sent: its shard count never goes
// down (a split's notification is sent only after it committed).
func (o *observer) notify(req storconapi.NotifyAttachRequest) {
	count := 0
	if req.StripeSize != nil {
		count = len(req.Shards)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.notifies++
	if count < o.notified {
		o.setErr(fmt.Errorf("%w: notified %d shards after %d", ErrMap, count, o.notified))
	}
	o.notified = max(o.notified, count)
}

// psSpy is the controller's client for one pageserver's management API:
// it checks the generations the controller hands out and crashes the
// controller right before or after a pageserver's shard_split (targeted
// crashes). It never changes a request or an answer.
type psSpy struct {
	c     *cluster
	inner net.HTTPClient
}

func tsidOfPath(path, suffix string) (shard.TenantShardID, bool) {
	if !strings.HasPrefix(path, "/v1/tenant/") || !strings.HasSuffix(path, suffix) {
		return shard.TenantShardID{}, false
	}
	id, err := shard.ParseTenantShardID(strings.TrimSuffix(strings.TrimPrefix(path, "/v1/tenant/"), suffix))
	return id, err == nil
}

func (s psSpy) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	o := s.c.o
	if id, ok := tsidOfPath(req.Path, "/location_config"); ok && req.Method == "PUT" {
		if conf, err := roundTrip[pageapi.LocationConfig](in); err == nil && conf.Mode.Attached() && conf.Generation != nil {
			o.attached(id, *conf.Generation)
		}
	}
	id, split := tsidOfPath(req.Path, "/shard_split")
	split = split && req.Method == "PUT"
	if split {
		s.c.targetedCrash("before", id)
	}
	st, err := s.inner.Do(ctx, req, in, out)
	if split {
		if err == nil {
			o.mu.Lock()
			o.splits++
			o.mu.Unlock()
		}
		s.c.targetedCrash("after", id)
	}
	return st, err
}

// targetedCrash crashes the controller (it does not return then) with the
// seed's probability, at most maxTargeted times, while faults are on.
func (c *cluster) targetedCrash(when string, id shard.TenantShardID) {
	if !c.safety || c.targeted >= maxTargeted || c.targetRand.Float64() >= c.targetProb/2 {
		return
	}
	c.targeted++
	c.w.Log().Info("targeted crash: controller "+when+" a pageserver's shard_split", "tenant_shard_id", id)
	c.w.Crash(controllerID, c.targetRand.IntN(2) == 0)
}

// hookSpy is the controller's client for the compute hook.
type hookSpy struct {
	o     *observer
	inner net.HTTPClient
}

func (s hookSpy) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	if body, err := roundTrip[storconapi.NotifyAttachRequest](in); err == nil {
		s.o.notify(body)
	}
	return s.inner.Do(ctx, req, in, out)
}
