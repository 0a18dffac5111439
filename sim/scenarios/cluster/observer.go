package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// nodeShard names one pageserver's location of one tenant shard.
type nodeShard struct {
	node int
	id   shard.TenantShardID
}

// indexPut is an index a pageserver put (the Put succeeded), at event seq.
type indexPut struct {
	gen   layer.Generation
	seq   uint64
	names map[remote.LayerID]bool
}

// validation is one answer to a pageserver's validate call: sent and
// answered at event sequence numbers.
type validation struct {
	gen         uint32
	sent, recvd uint64
	valid       bool
}

// observer holds what the spies saw and the first violation. Events are
// ordered by a sequence number (virtual time can stand still between
// them).
type observer struct {
	c          *cluster
	replayRand *rand.Rand

	mu  sync.Mutex
	seq uint64
	err error
	// issued is the highest generation handed out for each shard (in an
	// attached location_config or a re-attach answer): the one the
	// controller validates. nodeGen is the highest handed to each node.
	issued  map[shard.TenantShardID]uint32
	nodeGen map[nodeShard]uint32
	// lastSent is the event of the last location_config sent to each
	// location; stale holds the locations that acknowledged AttachedStale
	// and were sent nothing since.
	lastSent map[nodeShard]uint64
	stale    map[nodeShard]bool
	// layersPut are the layer objects each node put (keyed by node and
	// object key); indexes the indexes each node put, per location.
	layersPut   map[nodeKey]bool
	indexes     map[nodeShard][]indexPut
	validations map[nodeShard][]validation

	stats struct {
		deletes, indexPuts, layerPuts, staleAcks, replays, replaysAcked, validations, invalid int
	}
}

type nodeKey struct {
	node int
	key  string
}

func newObserver(c *cluster) *observer {
	return &observer{c: c, replayRand: c.w.NewRand("replay"), issued: map[shard.TenantShardID]uint32{}, nodeGen: map[nodeShard]uint32{},
		lastSent: map[nodeShard]uint64{}, stale: map[nodeShard]bool{}, layersPut: map[nodeKey]bool{},
		indexes: map[nodeShard][]indexPut{}, validations: map[nodeShard][]validation{}}
}

func (o *observer) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.setErr(err)
}

func (o *observer) setErr(err error) {
	if o.err == nil {
		o.err = err
		o.c.w.Log().Error("checker failed", "err", err)
	}
}

func (o *observer) failure() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// tick returns the next event number.
func (o *observer) tick() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	return o.seq
}

func (o *observer) replayDelay() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return time.Duration(500+o.replayRand.IntN(4000)) * time.Millisecond
}

func (o *observer) countReplay(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stats.replays++
	if err == nil {
		o.stats.replaysAcked++
	}
}

// handOut records generation gen given to node for id. o.mu is held.
func (o *observer) handOutLocked(node int, id shard.TenantShardID, gen uint32) {
	o.issued[id] = max(o.issued[id], gen)
	ns := nodeShard{node, id}
	o.nodeGen[ns] = max(o.nodeGen[ns], gen)
}

// movedOn reports whether a generation above gen was handed out for id.
func (o *observer) movedOn(id shard.TenantShardID, gen uint32) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.issued[id] > gen
}

// locationSent: a location_config is on its way to node (before the
// pageserver can act on it). It returns the event number.
func (o *observer) locationSent(node int, id shard.TenantShardID, conf pageapi.LocationConfig) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	ns := nodeShard{node, id}
	o.lastSent[ns] = o.seq
	delete(o.stale, ns)
	if conf.Mode.Attached() && conf.Generation != nil {
		o.handOutLocked(node, id, *conf.Generation)
	}
	return o.seq
}

// locationAcked: the pageserver answered the location_config sent at
// event seq. An AttachedStale acknowledged with nothing sent since means
// the location neither uploads nor deletes from now on.
func (o *observer) locationAcked(node int, id shard.TenantShardID, conf pageapi.LocationConfig, seq uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ns := nodeShard{node, id}
	if conf.Mode == pageapi.ModeAttachedStale && o.lastSent[ns] == seq {
		o.stale[ns] = true
		o.stats.staleAcks++
	}
}

// reAttachSent: node (re)starts; whatever its locations were, the answer
// replaces them.
func (o *observer) reAttachSent(node int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	for ns := range o.stale { //strata:nondeterministic deleting entries; order cannot matter
		if ns.node == node {
			delete(o.stale, ns)
			o.lastSent[ns] = o.seq
		}
	}
}

func (o *observer) reAttached(node int, resp storconapi.ReAttachResponse) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, t := range resp.Tenants {
		if t.Gen != nil {
			o.handOutLocked(node, t.ID, *t.Gen)
		}
	}
}

// validated records a validate call's answer (an omitted shard is
// invalid).
func (o *observer) validated(node int, req storconapi.ValidateRequest, resp storconapi.ValidateResponse, sent uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	valid := map[shard.TenantShardID]bool{}
	for _, t := range resp.Tenants {
		valid[t.ID] = t.Valid
	}
	for _, t := range req.Tenants {
		ns := nodeShard{node, t.ID}
		o.validations[ns] = append(o.validations[ns], validation{gen: t.Gen, sent: sent, recvd: o.seq, valid: valid[t.ID]})
		o.stats.validations++
		if !valid[t.ID] {
			o.stats.invalid++
		}
	}
}

// beforePut checks a put of k by node as it starts: a location that
// acknowledged AttachedStale uploads nothing; an index names only layers
// of its own generation that this node has already put.
func (o *observer) beforePut(node int, k objKey, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ns := nodeShard{node, k.id}
	if o.stale[ns] {
		o.setErr(fmt.Errorf("%w: pageserver %d put %s after acknowledging AttachedStale", ErrStaleUpload, node, k.key))
	}
	if !k.index {
		return
	}
	ip, err := remote.Parse(data)
	if err != nil {
		o.setErr(fmt.Errorf("%w: pageserver %d put an index that does not parse at %s: %v", errUndecodableTraffic, node, k.key, err))
		return
	}
	for _, l := range ip.Layers {
		if l.Name.Generation != k.gen || l.Shard != k.id.Shard {
			continue // another attachment's object
		}
		key := remote.Layout{}.LayerKey(k.id.TenantID, k.tl, l.LayerID)
		if !o.layersPut[nodeKey{node, key}] {
			o.setErr(fmt.Errorf("%w: pageserver %d put %s naming %s, which it has not put", ErrIndexBeforeLayers, node, k.key, key))
		}
	}
}

// putDone records a put that succeeded.
func (o *observer) putDone(node int, k objKey, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	if !k.index {
		o.layersPut[nodeKey{node, k.key}] = true
		o.stats.layerPuts++
		return
	}
	ip, err := remote.Parse(data)
	if err != nil {
		return // reported by beforePut
	}
	p := indexPut{gen: k.gen, seq: o.seq, names: map[remote.LayerID]bool{}}
	for _, l := range ip.Layers {
		p.names[l.LayerID] = true
	}
	ns := nodeShard{node, k.id}
	o.indexes[ns] = append(o.indexes[ns], p)
	o.stats.indexPuts++
}

// indexLoaded checks an index node read: never one of a generation above
// every generation it was handed for the shard.
func (o *observer) indexLoaded(node int, k objKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if g := o.nodeGen[nodeShard{node, k.id}]; uint32(k.gen) > g {
		o.setErr(fmt.Errorf("%w: pageserver %d read %s, its highest generation of %s is %d", ErrIndexAboveGen, node, k.key, k.id, g))
	}
}

// beforeDelete checks a delete of key by node as it starts:
//   - the node put, under some generation, an index that does not name
//     the object, and afterwards asked the controller about that
//     generation and was told it is valid (upload the index that stops
//     naming it, validate, only then delete): a stale generation never
//     deletes;
//   - the newest index of the shard's current generation (the one an
//     attachment would load) does not name it.
func (o *observer) beforeDelete(node int, key string) {
	k, ok := parseKey(key)
	if !ok {
		return // not a timeline's object (a heatmap, say): nothing names it
	}
	if k.index {
		o.mu.Lock()
		cur := o.issued[k.id]
		o.mu.Unlock()
		if _, gen, found, err := o.c.newestIndex(k.id, k.tl, layer.Generation(cur)); err == nil && found && gen == k.gen {
			o.fail(fmt.Errorf("%w: pageserver %d deleted %s, the newest index of generation %d", ErrDeletedLive, node, key, cur))
		}
		return
	}
	id := remote.LayerID{Name: k.layer, Shard: k.id.Shard}
	o.mu.Lock()
	o.stats.deletes++
	ns := nodeShard{node, k.id}
	ok = false
	for _, v := range o.validations[ns] {
		if !v.valid {
			continue
		}
		for _, p := range o.indexes[ns] {
			if uint32(p.gen) == v.gen && p.seq < v.sent && !p.names[id] {
				ok = true
				break
			}
		}
		if ok {
			break
		}
	}
	if !ok {
		o.setErr(fmt.Errorf("%w: pageserver %d deleted %s", ErrUnvalidatedDelete, node, key))
	}
	cur := o.issued[k.id]
	o.mu.Unlock()
	ip, gen, found, err := o.c.newestIndex(k.id, k.tl, layer.Generation(cur))
	if err != nil {
		o.fail(fmt.Errorf("cluster: reading the index before a delete: %w", err))
		return
	}
	if l, named := ip.Find(k.layer); found && named && l.LayerID == id {
		o.fail(fmt.Errorf("%w: pageserver %d deleted %s, named by the index of generation %s (current %d; disk_consistent_lsn %s, %d layers)", ErrDeletedLive, node, key, gen, cur, ip.Metadata.DiskConsistentLSN, len(ip.Layers)))
	}
}

// newestIndex reads, around the object store's faults, the index an
// attachment of timeline tl with generation gen would load (found false if
// there is none).
func (c *cluster) newestIndex(id shard.TenantShardID, tl shard.TimelineID, gen layer.Generation) (remote.IndexPart, layer.Generation, bool, error) {
	var ip remote.IndexPart
	var got layer.Generation
	var found bool
	err := c.peek(func(st objstore.Store) error {
		l := remote.Layout{}
		var keys []string
		opts := objstore.ListOptions{}
		for {
			p, err := st.List(context.Background(), l.IndexListPrefix(id, tl), opts)
			if err != nil {
				return err
			}
			for _, o := range p.Objects {
				keys = append(keys, o.Key)
			}
			if p.NextStartAfter == "" {
				break
			}
			opts.StartAfter = p.NextStartAfter
		}
		key, g, ok := remote.PickIndex(l, id, tl, gen, keys)
		if !ok {
			return nil
		}
		data, err := st.Get(context.Background(), key)
		if err != nil {
			return err
		}
		if ip, err = remote.Parse(data); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		got, found = g, true
		return nil
	})
	return ip, got, found, err
}

// peek runs fn on the world's object store with its faults off: the
// checkers read the truth, and draw nothing from the fault source. The
// store is an objstore.Local on a disk without latency, so fn never
// yields and no other task sees the faults off.
func (c *cluster) peek(fn func(objstore.Store) error) error {
	faults := c.storeFaults
	if err := c.w.SetStoreFaults(objstore.FaultConfig{}); err != nil {
		return err
	}
	err := fn(c.w.Store())
	if serr := c.w.SetStoreFaults(faults); serr != nil && err == nil {
		err = serr
	}
	return err
}

// summary is a line of the spies' counts.
func (o *observer) summary() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.stats
	return fmt.Sprintf("deletes=%d index_puts=%d layer_puts=%d validations=%d invalid=%d stale_acks=%d replays=%d/%d",
		s.deletes, s.indexPuts, s.layerPuts, s.validations, s.invalid, s.staleAcks, s.replaysAcked, s.replays)
}
