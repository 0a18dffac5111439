package safekeeper

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
)

func checkID(kind, id string) error {
	if id == "" || len(id) > 64 || strings.Trim(id, "0123456789abcdefABCDEFghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ_-") != "" {
		return fmt.Errorf("%w: %s %q", ErrBadID, kind, id)
	}
	return nil
}

type tlKey struct{ tenant, timeline string }

func (k tlKey) dir() string { return path.Join("timelines", k.tenant, k.timeline) }

// timeline is one acceptor and its store. mu (a clock.Mutex, because it is
// held across disk I/O) serialises every step and read.
type timeline struct {
	key   tlKey
	sk    *Safekeeper
	mu    *clock.Mutex
	cond  *clock.Cond // broadcast whenever flush or commit may have moved
	acc   *skproto.Acceptor
	store *walstore.Store
	// broken is set when the on-disk state failed its checks; the
	// timeline then answers DataLoss and is never served.
	broken error
	// stopped is set by Safekeeper.Stop: the timeline is closed for good.
	stopped bool
	// persistedCommit is the commit LSN in the control file.
	persistedCommit lsn.LSN
	backupLSN       lsn.LSN
	// verifiedLSN is a frame boundary at or below the start of the next
	// segment to offload, where the offloader's frame check of that
	// segment starts (segments do not start on frame boundaries).
	verifiedLSN lsn.LSN
	// checked caches frame-checked committed WAL from checkedAt (=
	// verifiedLSN) for the offloader, bounded by one bulk read past the
	// segment being uploaded.
	checked   []byte
	checkedAt lsn.LSN
	// feedback is each pageserver's last reported progress on this
	// timeline, by pageserver id (at most MaxFeedbackSources), and
	// feedbackSeen when each last reported (Clock.Mono).
	feedback     map[string]*skapi.PageserverFeedback
	feedbackSeen map[string]time.Duration
	// peerPins are the remote-consistent pins peers published to the
	// broker (each the lowest remote_consistent_lsn of the pageservers
	// reporting to that peer), by safekeeper id (at most
	// MaxFeedbackSources).
	peerPins map[string]pin
}

// pin is a remote_consistent_lsn that holds WAL back, and when it was last
// renewed (Clock.Mono).
type pin struct {
	lsn  lsn.LSN
	seen time.Duration
}

// MaxFeedbackSources bounds the pageservers whose feedback a timeline
// keeps; feedback from more is dropped (and logged).
const MaxFeedbackSources = 64

// recordFeedback keeps a pageserver's progress. LSNs never move back for
// a source (a stale message after a reconnect is ignored field by field).
func (tl *timeline) recordFeedback(ctx context.Context, fb *skapi.PageserverFeedback) error {
	if err := tl.mu.Lock(ctx); err != nil {
		return err
	}
	defer tl.mu.Unlock()
	if tl.feedback == nil {
		tl.feedback = map[string]*skapi.PageserverFeedback{}
		tl.feedbackSeen = map[string]time.Duration{}
	}
	now := tl.sk.env.Clock.Mono()
	id := fb.GetPageserverId()
	old, ok := tl.feedback[id]
	if !ok {
		if len(tl.feedback) >= MaxFeedbackSources {
			// Sources that expired (detached pageservers) make room.
			for _, id := range slices.Sorted(maps.Keys(tl.feedback)) {
				if now-tl.feedbackSeen[id] > tl.sk.cfg.FeedbackExpiry {
					delete(tl.feedback, id)
					delete(tl.feedbackSeen, id)
				}
			}
		}
		if len(tl.feedback) >= MaxFeedbackSources {
			return fmt.Errorf("%w: feedback from more than %d pageservers", ErrTooManyFeedbackSources, MaxFeedbackSources)
		}
		old = &skapi.PageserverFeedback{PageserverId: id}
		tl.feedback[id] = old
	}
	old.LastRecordLsn = max(old.LastRecordLsn, fb.GetLastRecordLsn())
	old.DiskConsistentLsn = max(old.DiskConsistentLsn, fb.GetDiskConsistentLsn())
	old.RemoteConsistentLsn = max(old.RemoteConsistentLsn, fb.GetRemoteConsistentLsn())
	tl.feedbackSeen[id] = now
	return nil
}

// remotePinLocked is, with mu held, the lowest remote_consistent_lsn among
// the pageservers that reported within FeedbackExpiry: 0 when none did,
// and at least 1 when one did (a pageserver that has made nothing remote
// yet pins all the WAL; 0 is kept for "no pageserver", also on the broker).
func (tl *timeline) remotePinLocked(now time.Duration) lsn.LSN {
	var p lsn.LSN
	for id, f := range tl.feedback { //strata:nondeterministic a minimum does not depend on order
		if now-tl.feedbackSeen[id] > tl.sk.cfg.FeedbackExpiry {
			continue
		}
		r := max(lsn.LSN(f.RemoteConsistentLsn), 1)
		if p == 0 || r < p {
			p = r
		}
	}
	return p
}

// notePeerPinLocked records, with mu held, the pin a peer published.
func (tl *timeline) notePeerPinLocked(id string, l lsn.LSN, now time.Duration) {
	if tl.peerPins == nil {
		tl.peerPins = map[string]pin{}
	}
	if _, ok := tl.peerPins[id]; !ok && len(tl.peerPins) >= MaxFeedbackSources {
		for _, old := range slices.Sorted(maps.Keys(tl.peerPins)) {
			if now-tl.peerPins[old].seen > tl.sk.cfg.FeedbackExpiry {
				delete(tl.peerPins, old)
			}
		}
		if len(tl.peerPins) >= MaxFeedbackSources {
			return // the own pins still hold; logged by no one: bounded
		}
	}
	tl.peerPins[id] = pin{lsn: l, seen: now}
}

// peerPinLocked is the lowest pin peers published within FeedbackExpiry
// (0: none).
func (tl *timeline) peerPinLocked(now time.Duration) lsn.LSN {
	var p lsn.LSN
	for _, pp := range tl.peerPins { //strata:nondeterministic a minimum does not depend on order
		if now-pp.seen <= tl.sk.cfg.FeedbackExpiry && (p == 0 || pp.lsn < p) {
			p = pp.lsn
		}
	}
	return p
}

// feedbackLocked lists the feedback by pageserver id.
func (tl *timeline) feedbackLocked() []*skapi.PageserverFeedback {
	out := make([]*skapi.PageserverFeedback, 0, len(tl.feedback))
	for _, id := range slices.Sorted(maps.Keys(tl.feedback)) {
		f := tl.feedback[id]
		out = append(out, &skapi.PageserverFeedback{PageserverId: id, LastRecordLsn: f.LastRecordLsn,
			DiskConsistentLsn: f.DiskConsistentLsn, RemoteConsistentLsn: f.RemoteConsistentLsn})
	}
	return out
}

func (sk *Safekeeper) newTimeline(key tlKey) *timeline {
	tl := &timeline{key: key, sk: sk, mu: clock.NewMutex(sk.env.Clock)}
	tl.cond = clock.NewCond(tl.mu)
	return tl
}

// load opens the store from disk and rebuilds the acceptor; used at
// start-up and after an I/O error (a restart in place).
func (tl *timeline) load() error {
	tl.unload()
	st, err := walstore.Open(tl.sk.env.Disk, tl.key.dir())
	if err != nil {
		return err
	}
	return tl.attach(st)
}

// create makes the timeline's directory on first greeting.
func (tl *timeline) create(g skproto.Greeting) error {
	st, err := walstore.Create(tl.sk.env.Disk, tl.key.dir(), walstore.Control{
		TenantID: tl.key.tenant, TimelineID: tl.key.timeline, SegmentBytes: tl.sk.cfg.SegmentBytes,
		Acceptor: skproto.AcceptorState{StartLSN: g.StartLSN},
	})
	if err != nil {
		return err
	}
	return tl.attach(st)
}

// attach builds the acceptor over an opened store. State the acceptor
// rejects (WAL ending below the persisted commit) is corruption.
func (tl *timeline) attach(st *walstore.Store) error {
	ctl := st.Control()
	acc, err := skproto.NewAcceptor(tl.sk.cfg.NodeID, ctl.Acceptor, st.FlushLSN(), tl.sk.cfg.Bugs.Acceptor)
	if err != nil {
		_ = st.Close()
		return fmt.Errorf("%w: %w", walstore.ErrCorrupt, err)
	}
	st.SetUncheckedReads(tl.sk.cfg.Bugs.ServeUnchecked)
	tl.store, tl.acc = st, acc
	tl.persistedCommit, tl.backupLSN = ctl.Acceptor.CommitLSN, ctl.BackupLSN
	// The WAL held starts at the start LSN or, once WAL was removed, at the
	// removal horizon: both frame boundaries.
	base := max(ctl.Acceptor.StartLSN, ctl.HorizonLSN)
	tl.verifiedLSN = max(ctl.VerifiedLSN, base)
	if tl.verifiedLSN > max(ctl.BackupLSN, base) {
		// Written when VerifiedLSN meant a boundary above the backup LSN:
		// check again from the base (slower, never wrong).
		tl.verifiedLSN = base
	}
	if ctl.HorizonLSN > 0 {
		tl.sk.metrics.horizon.WithLabelValues(tl.key.tenant, tl.key.timeline).Set(float64(ctl.HorizonLSN))
	}
	return nil
}

// usable reports, with mu held, why the timeline cannot serve. A timeline
// whose last load failed with an I/O error (not corruption) is loaded
// again here, so a transient disk error heals without a restart.
func (tl *timeline) usable() error {
	if tl.stopped {
		return ErrStopped
	}
	if tl.broken != nil {
		return fmt.Errorf("safekeeper: timeline %s/%s is not served: %w", tl.key.tenant, tl.key.timeline, tl.broken)
	}
	if tl.acc == nil {
		if err := tl.load(); err != nil {
			if errors.Is(err, walstore.ErrCorrupt) {
				tl.markBroken(err)
				return fmt.Errorf("safekeeper: timeline %s/%s is not served: %w", tl.key.tenant, tl.key.timeline, err)
			}
			return fmt.Errorf("%w: %s/%s not loaded: %w", ErrUnavailable, tl.key.tenant, tl.key.timeline, err)
		}
	}
	return nil
}

// failed handles an I/O error with mu held: the in-memory state may be
// ahead of the disk, so the timeline drops it and reloads from disk (now
// or on next use), exactly as a restart would.
func (tl *timeline) failed(err error) error {
	tl.sk.log.Warn("timeline I/O error, reloading from disk", "tenant", tl.key.tenant, "timeline", tl.key.timeline, "err", err)
	tl.unload()
	_ = tl.usable()
	tl.cond.Broadcast()
	return fmt.Errorf("%w: %s/%s reloads after: %w", ErrUnavailable, tl.key.tenant, tl.key.timeline, err)
}

func (tl *timeline) unload() {
	if tl.store != nil {
		_ = tl.store.Close()
	}
	tl.store, tl.acc = nil, nil
	tl.checked = nil
}

func (tl *timeline) markBroken(err error) {
	tl.unload()
	tl.broken = err
	tl.sk.log.Error("timeline is corrupt and will not be served", "tenant", tl.key.tenant, "timeline", tl.key.timeline, "err", err)
	tl.sk.metrics.corrupt.Inc()
}

// control returns the control state to persist, with mu held.
func (tl *timeline) control(acc skproto.AcceptorState) walstore.Control {
	c := tl.store.Control()
	c.Acceptor = acc
	c.BackupLSN = tl.backupLSN
	c.VerifiedLSN = tl.verifiedLSN
	return c
}

// checkedSegment returns, with mu held, sealed segment segno rebuilt from
// frames that passed their checksums, and the frame boundary at or below
// the segment's end where the next segment's check must start. Segments
// do not start on frame boundaries, so the check starts at verifiedLSN (a
// boundary at or below the segment's start) and walks whole frames past
// the segment's end. Only these checked bytes are uploaded: a byte damaged
// after an earlier check can never reach the object store. Damage marks
// the timeline corrupt. Bytes of the first segment below the timeline's
// start LSN are zero.
func (tl *timeline) checkedSegment(segno uint64) ([]byte, lsn.LSN, error) {
	segBytes := lsn.LSN(tl.store.SegmentBytes())
	segStart, segEnd := lsn.LSN(segno)*segBytes, lsn.LSN(segno+1)*segBytes
	from := tl.verifiedLSN
	if from > segStart {
		from = max(segStart, tl.acc.State().StartLSN)
	}
	// Removal adopts a backup LSN at or above its horizon (remove.go), so
	// the offloader never needs a removed segment.
	if h := tl.store.HorizonLSN(); from < h {
		return nil, 0, fmt.Errorf("%w: segment %s to offload starts below the removal horizon %s", walstore.ErrRemoved, walstore.SegmentName(segno), h)
	}
	if tl.checked == nil || tl.checkedAt != from {
		tl.checked, tl.checkedAt = nil, from
	}
	// Read in bulk (up to maxOffloadPerRound segments' worth per call):
	// checked bytes are kept in memory, where media corruption cannot
	// reach them, for the next segments of the round.
	bulk := min(lsn.LSN(tl.sk.cfg.MaxReadBytes), maxOffloadPerRound*segBytes)
	for end := from + lsn.LSN(len(tl.checked)); end < segEnd; end = from + lsn.LSN(len(tl.checked)) {
		want := max(segEnd-end, bulk, skproto.FrameHeaderBytes)
		b, err := tl.readBounded(end, tl.acc.CommitLSN(), int(want))
		if err != nil {
			tl.checked = nil
			return nil, 0, err
		}
		if len(b) == 0 {
			return nil, 0, fmt.Errorf("%w: no committed WAL at %s to offload", walstore.ErrRange, end)
		}
		tl.checked = append(tl.checked, b...)
	}
	checked := tl.checked
	// The next check starts at the last frame boundary at or below segEnd.
	next := from
	for next < segEnd {
		n, ok := skproto.PeekFrameLen(checked[next-from:])
		if !ok || next+lsn.LSN(n) > segEnd {
			break
		}
		next += lsn.LSN(n)
	}
	seg := make([]byte, segBytes)
	lo := max(from, segStart)
	copy(seg[lo-segStart:], checked[lo-from:segEnd-from])
	return seg, next, nil
}

// maxStepBatch bounds the proposer messages applied under one fsync.
const maxStepBatch = 32

// step runs proposer messages through the acceptor in order, applying each
// Ready (truncate, write, persist), then syncs the WAL once before any
// reply may be sent: pipelined appends share one fsync (group commit).
func (tl *timeline) step(ctx context.Context, msgs []skproto.Msg) ([]skproto.Msg, error) {
	if err := tl.mu.Lock(ctx); err != nil {
		return nil, err
	}
	defer tl.mu.Unlock()
	if err := tl.usable(); err != nil {
		return nil, err
	}
	replies := make([]skproto.Msg, 0, len(msgs))
	for _, m := range msgs {
		r, err := tl.acc.Step(m)
		if err != nil {
			return nil, err // skproto's errors: refused, the stream ends
		}
		if r.Truncate {
			if err := tl.store.Truncate(r.TruncateLSN); err != nil {
				return nil, tl.failed(err)
			}
		}
		if len(r.WAL) > 0 {
			if err := tl.store.Write(r.WriteLSN, r.WAL); err != nil {
				return nil, tl.failed(err)
			}
			tl.sk.metrics.appendBytes.Add(float64(len(r.WAL)))
		}
		if r.Persist {
			if err := tl.store.Sync(); err != nil {
				return nil, tl.failed(err)
			}
			if err := tl.store.PersistControl(tl.control(r.State)); err != nil {
				return nil, tl.failed(err)
			}
			tl.persistedCommit = r.State.CommitLSN
		}
		replies = append(replies, r.Reply)
	}
	if !tl.sk.cfg.Bugs.AckBeforeFsync {
		if err := tl.store.Sync(); err != nil {
			return nil, tl.failed(err)
		}
	}
	// The commit LSN in the control file only bounds the start-up scan,
	// so it is refreshed once per segment of progress, not per append.
	if c := tl.acc.CommitLSN(); c >= tl.persistedCommit+lsn.LSN(tl.store.SegmentBytes()) {
		if err := tl.store.Sync(); err != nil {
			return nil, tl.failed(err)
		}
		if err := tl.store.PersistControl(tl.control(tl.acc.State())); err != nil {
			return nil, tl.failed(err)
		}
		tl.persistedCommit = c
	}
	tl.cond.Broadcast()
	return replies, nil
}

// syncLate is the planted sk-ack-before-fsync bug's second half: the sync
// that should have preceded the acknowledgement.
func (tl *timeline) syncLate(ctx context.Context) {
	if err := tl.mu.Lock(ctx); err != nil {
		return
	}
	defer tl.mu.Unlock()
	if tl.usable() == nil {
		if err := tl.store.Sync(); err != nil {
			_ = tl.failed(err)
		}
	}
}

// Snapshot is a timeline's state as seen by Status, the broker and tests.
type Snapshot struct {
	Term        skproto.Term
	ElectedTerm skproto.Term
	History     skproto.TermHistory
	FlushLSN    lsn.LSN
	CommitLSN   lsn.LSN
	BackupLSN   lsn.LSN
	StartLSN    lsn.LSN
	// SegmentBytes is the timeline's WAL segment size.
	SegmentBytes int64
	// Feedback is each pageserver's last reported progress, by id. It is
	// kept in memory only: after a restart pageservers report again.
	Feedback []*skapi.PageserverFeedback
	// RemotePin is the lowest remote_consistent_lsn of the pageservers
	// that reported here within FeedbackExpiry (0: none; at least 1 once
	// one did), published to the broker.
	RemotePin lsn.LSN
	// HorizonLSN is the removal horizon: WAL below it may be removed
	// (0: nothing removed).
	HorizonLSN lsn.LSN
}

func (tl *timeline) snapshotLocked() Snapshot {
	st := tl.acc.State()
	return Snapshot{Term: tl.acc.Term(), ElectedTerm: tl.acc.ElectedTerm(), History: tl.acc.History(),
		FlushLSN: tl.acc.FlushLSN(), CommitLSN: tl.acc.CommitLSN(), BackupLSN: tl.backupLSN, StartLSN: st.StartLSN,
		SegmentBytes: tl.store.SegmentBytes(), Feedback: tl.feedbackLocked(),
		RemotePin: tl.remotePinLocked(tl.sk.env.Clock.Mono()), HorizonLSN: tl.store.HorizonLSN()}
}

func (tl *timeline) snapshot(ctx context.Context) (Snapshot, error) {
	if err := tl.mu.Lock(ctx); err != nil {
		return Snapshot{}, err
	}
	defer tl.mu.Unlock()
	if err := tl.usable(); err != nil {
		return Snapshot{}, err
	}
	return tl.snapshotLocked(), nil
}

// read returns whole frames of WAL from start, bounded by end and by
// maxBytes (0 or above MaxReadBytes: MaxReadBytes), unless the first frame
// alone is larger. With term non-zero the acceptor must be in that term.
func (tl *timeline) read(ctx context.Context, start, end lsn.LSN, term skproto.Term, maxBytes uint64) ([]byte, error) {
	if err := tl.mu.Lock(ctx); err != nil {
		return nil, err
	}
	defer tl.mu.Unlock()
	if err := tl.usable(); err != nil {
		return nil, err
	}
	if term != 0 && tl.acc.Term() != term {
		return nil, fmt.Errorf("%w: in term %d, read asked for term %d", ErrWrongTerm, tl.acc.Term(), term)
	}
	if end > tl.acc.FlushLSN() {
		return nil, fmt.Errorf("%w: read to %s beyond flush %s", walstore.ErrRange, end, tl.acc.FlushLSN())
	}
	limit := tl.sk.cfg.MaxReadBytes
	if maxBytes > 0 && maxBytes < uint64(limit) {
		limit = int(maxBytes)
	}
	return tl.readBounded(start, end, limit)
}

func (tl *timeline) readLocked(start, end lsn.LSN) ([]byte, error) {
	return tl.readBounded(start, end, tl.sk.cfg.MaxReadBytes)
}

// readBounded is readLocked with at most maxBytes (unless the first frame
// alone is larger).
func (tl *timeline) readBounded(start, end lsn.LSN, maxBytes int) ([]byte, error) {
	b, err := tl.store.ReadFrames(start, end, maxBytes)
	if errors.Is(err, walstore.ErrCorrupt) {
		tl.markBroken(err)
	}
	return b, err
}
