package safekeeper

import (
	"context"
	"fmt"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
)

// maxRemoveWalkSegments bounds the WAL one removal round walks (frame by
// frame, to find the horizon's frame boundary) per timeline, in segments.
const maxRemoveWalkSegments = 8

// removalEnabled: WAL is removed only by a safekeeper that offloads (what
// it removes must be in object storage) and that was not told to keep it.
func (sk *Safekeeper) removalEnabled() bool { return sk.cfg.Offload && !sk.cfg.DisableWALRemoval }

func (sk *Safekeeper) removeLoop(ctx context.Context) error {
	for {
		if err := clock.Sleep(ctx, sk.env.Clock, sk.cfg.RemovalInterval); err != nil {
			return err
		}
		for _, tl := range sk.sortedTimelines() {
			if _, err := sk.removeTimeline(ctx, tl); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				sk.log.Warn("WAL removal failed", "tenant", tl.key.tenant, "timeline", tl.key.timeline, "err", err)
			}
		}
	}
}

// horizonInputs are what bounds a timeline's removal horizon.
type horizonInputs struct {
	commit, flush lsn.LSN
	// backup: WAL below it is in object storage (this safekeeper's
	// uploads or a peer's).
	backup lsn.LSN
	// remote: the lowest remote_consistent_lsn of the pageservers heard
	// from (directly or through a peer) within FeedbackExpiry; 0 if none.
	remote lsn.LSN
	// peerFlush: the lowest flush LSN among this safekeeper and the peers
	// the broker knows (dead ones too, until their entry expires): WAL a
	// lagging peer still needs for its recovery is kept.
	peerFlush lsn.LSN
	// base is where the WAL held starts (start LSN or current horizon),
	// seg the timeline's segment size.
	base, seg lsn.LSN
}

// horizon is the LSN below which WAL may be removed (0: nothing), before
// rounding down to a frame boundary: the minimum of the commit LSN, the
// offloaded WAL, the peers' flush and the pageservers' remote-consistent
// pin. Without any pageserver's report nothing is removed: a pageserver
// that never reported may need all the WAL. The planted
// TrimAboveRemoteConsistent bug leaves the pageservers out.
func (in horizonInputs) horizon(bugs Bugs) lsn.LSN {
	h := min(in.commit, in.flush, in.backup, in.peerFlush)
	if bugs.TrimAboveRemoteConsistent {
		return h
	}
	if in.remote == 0 {
		return 0
	}
	return min(h, in.remote)
}

// gatherHorizon collects the inputs of tl's horizon: its own state, and
// with a broker the peers' backup and flush LSNs and their published pins.
// A broker that does not answer means no removal this round.
func (sk *Safekeeper) gatherHorizon(ctx context.Context, tl *timeline) (horizonInputs, error) {
	var in horizonInputs
	var infos []*brokerapi.SafekeeperTimelineInfo
	if sk.broker != nil {
		var err error
		if infos, err = sk.broker.Get(ctx, &brokerapi.TimelineFilter{TenantId: tl.key.tenant, TimelineId: tl.key.timeline}); err != nil {
			return in, fmt.Errorf("ask broker for peers: %w", err)
		}
	}
	if err := tl.mu.Lock(ctx); err != nil {
		return in, err
	}
	defer tl.mu.Unlock()
	if err := tl.usable(); err != nil {
		return in, err
	}
	now := sk.env.Clock.Mono()
	in.commit, in.flush, in.backup = tl.acc.CommitLSN(), tl.acc.FlushLSN(), tl.backupLSN
	in.peerFlush = in.flush
	for _, p := range infos {
		if p.GetSafekeeperId() == sk.cfg.NodeID {
			continue
		}
		in.backup = max(in.backup, lsn.LSN(p.GetBackupLsn()))
		in.peerFlush = min(in.peerFlush, lsn.LSN(p.GetFlushLsn()))
		if r := p.GetRemoteConsistentLsn(); r != 0 {
			tl.notePeerPinLocked(p.GetSafekeeperId(), lsn.LSN(r), now)
		}
	}
	in.remote = tl.remotePinLocked(now)
	if pp := tl.peerPinLocked(now); pp != 0 && (in.remote == 0 || pp < in.remote) {
		in.remote = pp
	}
	in.base = max(tl.acc.State().StartLSN, tl.store.HorizonLSN())
	in.seg = lsn.LSN(tl.store.SegmentBytes())
	return in, nil
}

// removeTimeline removes the sealed segments of tl wholly below its
// horizon, rounded down to a frame boundary (the new first segment must be
// readable frame by frame from a known boundary). It returns the number of
// segments removed.
func (sk *Safekeeper) removeTimeline(ctx context.Context, tl *timeline) (int, error) {
	if sk.env.Clock.Mono()-sk.startedAt < sk.cfg.FeedbackExpiry {
		return 0, nil // pageservers that reported before the start may not have yet
	}
	in, err := sk.gatherHorizon(ctx, tl)
	if err != nil {
		return 0, err
	}
	target := in.horizon(sk.cfg.Bugs)
	if target == 0 || target/in.seg <= in.base/in.seg {
		return 0, nil
	}
	b, err := tl.boundaryAtOrBelow(ctx, target, in.base, in.seg)
	if err != nil {
		return 0, err
	}
	if err := tl.mu.Lock(ctx); err != nil {
		return 0, err
	}
	defer tl.mu.Unlock()
	if err := tl.usable(); err != nil {
		return 0, err
	}
	seg := in.seg
	if b/seg <= tl.store.HorizonLSN()/seg {
		return 0, nil
	}
	// The control state records the commit LSN: the WAL below it must be
	// durable first (it is, unless an append's sync failed just now).
	if err := tl.store.Sync(); err != nil {
		return 0, tl.failed(err)
	}
	c := tl.control(tl.acc.State())
	c.HorizonLSN = b
	if tl.verifiedLSN < b {
		// This safekeeper's own offload is behind the horizon (a peer
		// uploaded those segments): take the peers' progress as its own,
		// so that if it becomes the offloader it starts at a segment it
		// still holds, checking frames from b. b ≤ the offloaded WAL, a
		// segment boundary, so rounding b up to one stays within it.
		c.BackupLSN = max(c.BackupLSN, (b+seg-1)/seg*seg)
		c.VerifiedLSN = b
	}
	if invariants.Enabled {
		invariants.Check(b <= in.backup && b <= c.Acceptor.CommitLSN && c.VerifiedLSN <= c.BackupLSN,
			"safekeeper: removal horizon %s above backup %s or commit %s, or verified %s above backup %s",
			b, in.backup, c.Acceptor.CommitLSN, c.VerifiedLSN, c.BackupLSN)
	}
	n, err := tl.store.RemoveBelow(c)
	if err != nil {
		return n, tl.failed(err)
	}
	tl.persistedCommit = c.Acceptor.CommitLSN
	if c.VerifiedLSN != tl.verifiedLSN {
		tl.checked = nil
	}
	tl.backupLSN, tl.verifiedLSN = c.BackupLSN, c.VerifiedLSN
	sk.metrics.removedSegs.Add(float64(n))
	sk.metrics.removedBytes.Add(float64(n) * float64(seg))
	sk.metrics.horizon.WithLabelValues(tl.key.tenant, tl.key.timeline).Set(float64(b))
	sk.log.Info("WAL removed", "tenant", tl.key.tenant, "timeline", tl.key.timeline, "horizon", b, "segments", n,
		"remote_consistent", in.remote, "backup", in.backup, "peer_flush", in.peerFlush)
	return n, nil
}

// boundaryAtOrBelow walks committed frames from a known frame boundary
// (base, or the offloader's verified LSN when it lies between) towards
// target and returns the last boundary reached, at most target; it walks at
// most maxRemoveWalkSegments segments per call, so a long way is covered
// over several rounds. The lock is taken per chunk: appends go on meanwhile
// (frames below the commit LSN never change).
func (tl *timeline) boundaryAtOrBelow(ctx context.Context, target, base, seg lsn.LSN) (lsn.LSN, error) {
	if err := tl.mu.Lock(ctx); err != nil {
		return 0, err
	}
	pos := base
	if v := tl.verifiedLSN; v > pos && v <= target {
		pos = v
	}
	limit := pos + maxRemoveWalkSegments*seg
	tl.mu.Unlock()
	for pos < target && pos < limit {
		if err := tl.mu.Lock(ctx); err != nil {
			return 0, err
		}
		if err := tl.usable(); err != nil {
			tl.mu.Unlock()
			return 0, err
		}
		b, err := tl.readBounded(pos, target, tl.sk.cfg.MaxReadBytes)
		tl.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if len(b) == 0 {
			break // the next frame ends beyond target
		}
		pos += lsn.LSN(len(b))
	}
	return pos, nil
}
