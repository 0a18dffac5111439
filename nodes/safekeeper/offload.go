package safekeeper

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
)

// maxOffloadPerRound bounds the segments one timeline uploads per round so
// one busy timeline cannot starve the others.
const maxOffloadPerRound = 8

// TimelineHash maps a timeline id to the number used to pick its
// offloader: the id's last 16 hex digits, or an FNV-1a hash if it is not
// hex.
func TimelineHash(id string) uint64 {
	tail := id
	if len(tail) > 16 {
		tail = tail[len(tail)-16:]
	}
	if v, err := strconv.ParseUint(tail, 16, 64); err == nil {
		return v
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// ChooseOffloader picks the uploader among candidate ids (live peers that
// have the data): sorted by id, index hash(timeline) mod count.
func ChooseOffloader(timelineID string, candidates []string) string {
	if len(candidates) == 0 {
		return ""
	}
	c := slices.Clone(candidates)
	slices.Sort(c)
	c = slices.Compact(c)
	return c[TimelineHash(timelineID)%uint64(len(c))]
}

func (sk *Safekeeper) offloadLoop(ctx context.Context) error {
	backlog := false
	for {
		// A round that left a timeline with ready segments (it stopped at
		// maxOffloadPerRound) is followed at once: waiting out the interval
		// would cap offload at maxOffloadPerRound segments per interval,
		// which a busy writer with small segments outruns for good.
		if !backlog {
			if err := clock.Sleep(ctx, sk.env.Clock, sk.cfg.OffloadInterval); err != nil {
				return err
			}
		}
		backlog = false
		for _, tl := range sk.sortedTimelines() {
			more, err := sk.offloadTimeline(ctx, tl)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				sk.log.Warn("offload failed", "tenant", tl.key.tenant, "timeline", tl.key.timeline, "err", err)
			}
			backlog = backlog || more
		}
	}
}

// offloadTimeline uploads sealed, committed segments above the backup LSN
// if this safekeeper is the timeline's chosen offloader, at most
// maxOffloadPerRound of them; more reports that it stopped there with
// further segments ready.
func (sk *Safekeeper) offloadTimeline(ctx context.Context, tl *timeline) (more bool, err error) {
	s, err := tl.snapshot(ctx)
	if err != nil {
		return false, nil // not servable; nothing to offload
	}
	seg := lsn.LSN(s.SegmentBytes)
	next := max(s.BackupLSN, s.StartLSN) / seg
	if (next+1)*seg > s.CommitLSN {
		return false, nil
	}
	if sk.cfg.BrokerAddr != "" {
		infos, err := sk.broker.Get(ctx, &brokerapi.TimelineFilter{TenantId: tl.key.tenant, TimelineId: tl.key.timeline})
		if err != nil {
			return false, fmt.Errorf("ask broker for peers: %w", err)
		}
		need := uint64((next + 1) * seg)
		cands := []string{sk.cfg.NodeID}
		for _, in := range infos {
			if time.Duration(in.GetAgeMs())*time.Millisecond <= sk.cfg.PeerLiveness && in.GetFlushLsn() >= need {
				cands = append(cands, in.GetSafekeeperId())
			}
		}
		if ChooseOffloader(tl.key.timeline, cands) != sk.cfg.NodeID {
			return false, nil
		}
	}
	for i := 0; i < maxOffloadPerRound && (next+1)*seg <= s.CommitLSN; i++ {
		if err := sk.offloadSegment(ctx, tl, uint64(next)); err != nil {
			return false, err
		}
		next++
	}
	return (next+1)*seg <= s.CommitLSN, nil
}

func (sk *Safekeeper) offloadSegment(ctx context.Context, tl *timeline, segno uint64) error {
	if err := tl.mu.Lock(ctx); err != nil {
		return err
	}
	if err := tl.usable(); err != nil {
		tl.mu.Unlock()
		return err
	}
	segEnd := lsn.LSN((segno + 1) * uint64(tl.store.SegmentBytes()))
	data, nextCheck, err := tl.checkedSegment(segno)
	tl.mu.Unlock()
	if err != nil {
		return err
	}
	key := skapi.RemoteSegmentKey(tl.key.tenant, tl.key.timeline, segno)
	backoff := sk.cfg.OffloadBackoff
	for attempt := 1; ; attempt++ {
		pctx, cancel := clock.WithTimeout(sk.env.Clock, ctx, sk.cfg.CallTimeout)
		err = sk.env.Store.Put(pctx, key, data, objstore.PutOptions{})
		cancel()
		if err == nil {
			break
		}
		sk.metrics.offloadErrs.Inc()
		if !objstore.Retryable(err) || attempt >= sk.cfg.OffloadRetries {
			return fmt.Errorf("upload %s (attempt %d): %w", key, attempt, err)
		}
		if err := clock.Sleep(ctx, sk.env.Clock, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, 32*sk.cfg.OffloadBackoff)
	}
	sk.metrics.offloaded.Inc()
	if err := tl.mu.Lock(ctx); err != nil {
		return err
	}
	defer tl.mu.Unlock()
	if tl.usable() == nil {
		if segEnd > tl.backupLSN {
			tl.backupLSN, tl.verifiedLSN = segEnd, nextCheck
			if tl.checked != nil && nextCheck >= tl.checkedAt && nextCheck <= tl.checkedAt+lsn.LSN(len(tl.checked)) {
				tl.checked, tl.checkedAt = tl.checked[nextCheck-tl.checkedAt:], nextCheck
			}
		}
		if err := tl.store.PersistControl(tl.control(tl.store.Control().Acceptor)); err != nil {
			return tl.failed(err)
		}
	}
	return nil
}
