package wal

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
	"github.com/stratadb/strata/sim"
)

// Corruption checker errors.
var (
	// ErrServedCorrupt: a safekeeper served WAL that is damaged or differs
	// from the committed WAL.
	ErrServedCorrupt = errors.New("wal: a safekeeper served corrupt WAL")
	// ErrUnreported: a safekeeper holds corrupt durable state but does
	// not report it.
	ErrUnreported = errors.New("wal: corruption not reported")
	// ErrFalseCorruption: a safekeeper reports corruption nobody injected.
	ErrFalseCorruption = errors.New("wal: corruption reported but not injected")
)

// Limits of the corruption bookkeeping.
const (
	// maxServedChunks bounds the served chunks kept for the final
	// comparison (each is also checked for valid frames on arrival).
	maxServedChunks = 20000
	// maxCorruptions bounds injections per run.
	maxCorruptions = 8
)

// corruption is one injected media error: one byte of durable state
// flipped on one safekeeper.
type corruption struct {
	sk string
	// control: the control file was hit; after is its content with the
	// flip (the corruption is still there iff the durable file is after).
	control bool
	after   []byte
	// otherwise a WAL segment byte at LSN at (below the safekeeper's
	// persisted commit LSN, so committed WAL) was flipped from orig.
	at   lsn.LSN
	orig byte
}

// corruptor injects media corruption on a fixed minority of the
// safekeepers (the targets). A target is counted as lost for the rest of
// the run: the others are a majority, which is all liveness needs.
type corruptor struct {
	w        *sim.World
	rng      *rand.Rand
	targets  []string
	mean     time.Duration
	segBytes lsn.LSN
	stopped  bool
	events   []corruption
}

func (c *corruptor) isTarget(sk string) bool { return slices.Contains(c.targets, sk) }

// planCorruption draws the corruption plan: only with at least three
// safekeepers, on at most a minority of them.
func planCorruption(w *sim.World, sks []string, segBytes int64, safety time.Duration) *corruptor {
	rng := w.NewRand("corrupt")
	c := &corruptor{w: w, rng: rng, segBytes: lsn.LSN(segBytes)}
	if len(sks) >= 3 && rng.IntN(2) == 0 {
		n := 1 + rng.IntN((len(sks)-1)/2) // 1 of 3; 1 or 2 of 5
		perm := rng.Perm(len(sks))
		for _, i := range perm[:n] {
			c.targets = append(c.targets, sks[i])
		}
		slices.Sort(c.targets)
		c.mean = safety / time.Duration(2+rng.IntN(4))
	}
	sim.Swarm(w, "corrupt", fmt.Sprintf("%v every %v", c.targets, c.mean))
	return c
}

func (c *corruptor) start() {
	if len(c.targets) == 0 {
		return
	}
	c.w.Go("corruptor", func(context.Context) {
		for !c.stopped && len(c.events) < maxCorruptions {
			c.w.Sleep(time.Duration(c.rng.ExpFloat64() * float64(c.mean)))
			if c.stopped {
				return
			}
			c.inject(c.targets[c.rng.IntN(len(c.targets))])
		}
	})
}

func tlDir() string { return path.Join("timelines", tenantID, timelineID) }

// inject flips one durable byte of sk's control file or of its committed
// WAL (below the persisted commit LSN: a flip above it is
// indistinguishable from a torn tail, see docs/wal-service.md).
func (c *corruptor) inject(sk string) {
	fsys := c.w.Node(sk).Disk()
	ctlPath := path.Join(tlDir(), "safekeeper.control")
	raw, err := disk.ReadFile(fsys, ctlPath)
	if err != nil {
		return // no timeline yet, or a read fault: nothing to hit
	}
	ctl, err := walstore.DecodeControl(raw)
	commit := ctl.Acceptor.CommitLSN
	start := max(ctl.Acceptor.StartLSN, startLSN)
	if err != nil || commit <= start || c.rng.IntN(3) == 0 {
		off := c.rng.IntN(len(raw))
		if fsys.Corrupt(ctlPath, int64(off)) != nil {
			return
		}
		after := slices.Clone(raw)
		after[off] ^= 0xff
		c.events = append(c.events, corruption{sk: sk, control: true, after: after})
		c.w.Log().Info("corrupt: control file", "target", sk, "offset", off)
		return
	}
	at := start + lsn.LSN(c.rng.Int64N(int64(commit-start)))
	segno := uint64(at / c.segBytes)
	off := int64(at % c.segBytes)
	name := segmentPath(fsys, segno)
	if name == "" {
		return
	}
	b, err := readByte(fsys, name, off)
	if err != nil || fsys.Corrupt(name, off) != nil {
		return
	}
	c.events = append(c.events, corruption{sk: sk, at: at, orig: b})
	c.w.Log().Info("corrupt: WAL", "target", sk, "lsn", at, "file", name)
}

// segmentPath finds segment segno, sealed or partial ("" if neither).
func segmentPath(fsys disk.FS, segno uint64) string {
	for _, suffix := range []string{"", ".partial"} {
		p := path.Join(tlDir(), "wal", walstore.SegmentName(segno)+suffix)
		if _, err := fsys.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func readByte(fsys disk.FS, name string, off int64) (byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		return 0, err
	}
	return b[0], nil
}

// servedChunk is WAL a safekeeper served: to a proposer's recovery
// (possibly not yet committed), to a StreamWal reader or to the auditor
// (committed).
type servedChunk struct {
	via, sk   string
	start     lsn.LSN
	wal       []byte
	committed bool
}

// ServedWAL implements walproposer.ReadObserver.
func (h *history) ServedWAL(id, from string, start lsn.LSN, wal []byte) {
	h.served(servedChunk{via: "recovery by " + id, sk: from, start: start, wal: slices.Clone(wal)})
}

// served checks a chunk at once (whole valid frames of appended records)
// and keeps committed ones for the comparison with the final WAL.
func (h *history) served(ch servedChunk) {
	frames, err := skproto.SplitFrames(ch.wal)
	if err != nil {
		h.fail(fmt.Errorf("%w: %s served %s bytes at %s (%s) that fail the frame checks: %v", ErrServedCorrupt, ch.sk, ch.via, ch.start, fmtLen(ch.wal), err))
		return
	}
	for _, f := range frames {
		if !h.appendSet[string(f)] {
			h.fail(fmt.Errorf("%w: %s served %q at %s (%s), never appended", ErrServedCorrupt, ch.sk, short(string(f)), ch.start, ch.via))
			return
		}
	}
	if ch.committed && len(h.servedChunks) < maxServedChunks {
		h.servedChunks = append(h.servedChunks, ch)
	}
}

func fmtLen(b []byte) string { return fmt.Sprintf("%d bytes", len(b)) }

// checkServed compares every committed chunk served with the final WAL
// [startLSN, commit).
func (h *history) checkServed(final []byte, commit lsn.LSN) error {
	for _, ch := range h.servedChunks {
		end := min(ch.start+lsn.LSN(len(ch.wal)), commit)
		if ch.start < startLSN || ch.start >= end {
			continue
		}
		want := final[ch.start-startLSN : end-startLSN]
		if at, differ := firstDiff(want, ch.wal[:end-ch.start]); differ {
			return fmt.Errorf("%w: %s served (%s) WAL differing from the committed WAL at %s", ErrServedCorrupt, ch.sk, ch.via, ch.start+lsn.LSN(at))
		}
	}
	return nil
}

// streamReader plays a pageserver: now and then it streams committed WAL
// from a random safekeeper for a short while; every chunk is checked.
func streamReader(w *sim.World, h *history, skAddrs []string) {
	rng := w.NewRand("stream-reader")
	ep := w.Net().Endpoint("reader", w.Clock())
	w.Go("stream-reader", func(ctx context.Context) {
		for !h.stopped {
			w.Sleep(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
			if h.stopped {
				return
			}
			addr := skAddrs[rng.IntN(len(skAddrs))]
			// Mostly from recent WAL (as a pageserver keeping up would),
			// now and then from the start: reading everything is costly.
			from := startLSN
			if n := len(h.committedLSNs); n > 0 && rng.IntN(8) != 0 {
				from = h.committedLSNs[n-1-rng.IntN(min(n, 64))]
			}
			readStream(ctx, w, h, ep, addr, from, time.Duration(200+rng.IntN(800))*time.Millisecond)
		}
	})
}

func readStream(ctx context.Context, w *sim.World, h *history, ep net.Network, addr string, from lsn.LSN, d time.Duration) {
	ctx, cancel := clock.WithTimeout(w.Clock(), ctx, d)
	defer cancel()
	conn, err := ep.Dial(ctx, addr)
	if err != nil {
		return
	}
	defer conn.Close()
	s, err := skapi.OpenStreamWal(ctx, conn, tenantID, timelineID, uint64(from))
	if err != nil {
		return
	}
	for range 1000 {
		ch, err := s.Recv()
		if err != nil {
			return
		}
		start := lsn.LSN(ch.GetStartLsn())
		if start+lsn.LSN(len(ch.GetWal())) > lsn.LSN(ch.GetCommitLsn()) {
			h.fail(fmt.Errorf("%w: %s streamed WAL %s+%d beyond its commit %s", ErrServedCorrupt, addr, start, len(ch.GetWal()), lsn.LSN(ch.GetCommitLsn())))
			return
		}
		h.served(servedChunk{via: "StreamWal", sk: addr, start: start, wal: ch.GetWal(), committed: true})
	}
}

// checkReported crashes each corrupted safekeeper (so only durable state
// counts), restarts it and requires: it reports corruption (DataLoss and
// its corrupt-timelines metric) exactly when an injected flip is still in
// its durable state; what it serves otherwise is the committed WAL.
func (a *auditor) checkReported(ctx context.Context, final []byte, commit lsn.LSN) error {
	for _, sk := range a.corrupt.targets {
		var evs []corruption
		for _, e := range a.corrupt.events {
			if e.sk == sk {
				evs = append(evs, e)
			}
		}
		if len(evs) == 0 {
			continue
		}
		n := a.w.Node(sk)
		n.Crash(false)
		present := ""
		fsys := n.Disk()
		for _, e := range evs {
			if e.control {
				if b, err := disk.ReadFile(fsys, path.Join(tlDir(), "safekeeper.control")); err == nil && string(b) == string(e.after) {
					present = "control file"
				}
				continue
			}
			if e.at >= commit {
				continue
			}
			name := segmentPath(fsys, uint64(e.at/a.corrupt.segBytes))
			if b, err := readByte(fsys, name, int64(e.at%a.corrupt.segBytes)); err == nil && b != final[e.at-startLSN] {
				present = fmt.Sprintf("WAL at %s", e.at)
			}
		}
		n.Restart()
		reported, err := a.probe(ctx, sk, a.skAddrs[slices.Index(a.sks, sk)], commit)
		if err != nil {
			return err
		}
		switch {
		case present != "" && !reported:
			return fmt.Errorf("%w: %s holds corrupt %s but serves it without complaint", ErrUnreported, sk, present)
		case present == "" && reported:
			return fmt.Errorf("%w: %s reports corruption after restart, but every injected flip is gone", ErrFalseCorruption, sk)
		}
		if reported {
			if v := corruptMetric(n); v < 1 {
				return fmt.Errorf("%w: %s answers DataLoss but safekeeper_corrupt_timelines_total is %v", ErrUnreported, sk, v)
			}
		}
		if reported {
			a.reported++
		}
	}
	sim.Stat(a.w, "corruptions", len(a.corrupt.events))
	sim.Stat(a.w, "corrupt_reported", a.reported)
	return nil
}

// probe asks a restarted safekeeper for its status and all committed WAL:
// it reports corruption (DataLoss) or serves WAL that must be committed.
func (a *auditor) probe(ctx context.Context, sk, addr string, commit lsn.LSN) (bool, error) {
	deadline := a.w.Now() + livenessBudget
	for {
		s, err := a.status(ctx, addr)
		if net.CodeOf(err) == net.DataLoss {
			return true, nil
		}
		if err == nil && lsn.LSN(s.GetFlushLsn()) >= commit {
			break
		}
		if a.w.Now() >= deadline {
			return false, fmt.Errorf("%w: restarted %s neither reports corruption nor catches up to %s (%v, %v)", ErrNoProgress, sk, commit, s, err)
		}
		a.w.Sleep(50 * time.Millisecond)
	}
	_, err := a.read(ctx, sk, addr, startLSN, commit)
	if net.CodeOf(err) == net.DataLoss {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("wal: reading restarted %s: %w", sk, err)
	}
	return false, nil
}

// corruptMetric reads safekeeper_corrupt_timelines_total from the node's
// current registry.
func corruptMetric(n *sim.Node) float64 {
	reg := n.Env().Metrics
	if reg == nil {
		return 0
	}
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == "safekeeper_corrupt_timelines_total" && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
