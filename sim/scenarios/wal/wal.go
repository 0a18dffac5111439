package wal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/simdisk"
	"github.com/stratadb/strata/sim/simnet"
)

// Planted bug names.
const (
	BugVoteWithoutPersist  = "sk-vote-without-persist"
	BugAckBeforeFsync      = "sk-ack-before-fsync"
	BugTruncateCommitted   = "sk-truncate-committed"
	BugCommitWithoutQuorum = "prop-commit-without-quorum"
	BugServeUnchecked      = "sk-serve-unchecked"
)

// Scenario constants.
const (
	tenantID   = "5a1e0000000000000000000000000001"
	timelineID = "7100000000000000000000000000000b"
	brokerID   = "broker"
	brokerAddr = "broker:50051"
	startLSN   = lsn.LSN(0x1000)
	// livenessBudget bounds each convergence wait after healing.
	livenessBudget = 40 * time.Second
	// opTimeout bounds one Append or WaitCommitted of the workload.
	opTimeout = 2 * time.Second
	// maxRecordBytes bounds one workload record.
	maxRecordBytes = 300
)

// Scenario returns the registered wal scenario.
func Scenario() sim.Scenario {
	return sim.Scenario{
		Name: "wal",
		Doc:  "safekeeper quorum WAL: competing and restarted walproposers, crashes, partitions, disk and object-store faults, media corruption on a minority, offload",
		Bugs: []sim.Bug{
			{Name: BugVoteWithoutPersist, Doc: "a safekeeper grants a vote without persisting the term; after a crash it votes again in that term (one winner per term)"},
			{Name: BugAckBeforeFsync, Doc: "a safekeeper acknowledges WAL before syncing it; a crash loses acknowledged WAL (committed WAL lost or rewritten)"},
			{Name: BugTruncateCommitted, Doc: "on election a safekeeper truncates to the start of the last common term, ignoring its commit LSN (committed WAL lost, liveness)"},
			{Name: BugCommitWithoutQuorum, Doc: "the walproposer counts one safekeeper's flush as committed (committed WAL rewritten by the next term)"},
			{Name: BugServeUnchecked, Doc: "a safekeeper's read path skips the frame checksums, so media corruption is served (to recovery, StreamWal readers, offload)"},
		},
		Run:            run,
		MaxVirtualTime: 3 * time.Minute,
		CISeeds:        8,
		BugSeeds:       300,
	}
}

func skID(i int) string   { return fmt.Sprintf("sk-%d", i) }
func skAddr(i int) string { return fmt.Sprintf("sk-%d:5454", i) }

func run(w *sim.World) error {
	rng := w.Rand()
	nSK := sim.Swarm(w, "safekeepers", []int{1, 3, 3, 3, 5}[rng.IntN(5)])
	nCompute := sim.Swarm(w, "computes", 1+rng.IntN(2))
	segBytes := sim.Swarm(w, "segment_bytes", int64(512)<<rng.IntN(4))
	safety := sim.Swarm(w, "safety", time.Duration(8+rng.IntN(10))*time.Second)
	think := sim.Swarm(w, "think_max", time.Duration(5+rng.IntN(60))*time.Millisecond)
	lat := simnet.Latency{
		Base:     time.Duration(100+rng.IntN(400)) * time.Microsecond,
		Jitter:   time.Duration(100+rng.IntN(1900)) * time.Microsecond,
		TailProb: 0.02 * rng.Float64(),
		Tail:     time.Duration(1+rng.IntN(30)) * time.Millisecond,
	}
	sim.Swarm(w, "net_latency", fmt.Sprintf("%v+%v tail %.3f/%v", lat.Base, lat.Jitter, lat.TailProb, lat.Tail))
	syncMax := sim.Swarm(w, "sync_max", time.Duration(1+rng.IntN(8))*time.Millisecond)
	// The walproposer's memory bounds: small in most seeds, so a lagging
	// safekeeper's gap is re-read window by window (0: the defaults). Drawn
	// from a stream of their own, so that the seeds' other draws (and the
	// planted bugs' detection figures) stay what they were before.
	wpRng := w.NewRand("walproposer-bounds")
	wpBuffer := sim.Swarm(w, "wp_max_buffer", []int{4 << 10, 16 << 10, 0}[wpRng.IntN(3)])
	wpRecover := sim.Swarm(w, "wp_max_recover", []int{2 << 10, 8 << 10}[wpRng.IntN(2)])

	var sks []string
	for i := 1; i <= nSK; i++ {
		sks = append(sks, skID(i))
	}
	var computes []string
	for i := 1; i <= nCompute; i++ {
		computes = append(computes, fmt.Sprintf("compute-%d", i))
	}
	nem := sim.Nemesis{
		Crashable:     append(append(append([]string(nil), sks...), computes...), brokerID),
		CrashMean:     time.Duration(400+rng.IntN(2500)) * time.Millisecond,
		TearProb:      rng.Float64(),
		StopProb:      0.2 * rng.Float64(),
		RestartAfter:  time.Duration(50+rng.IntN(700)) * time.Millisecond,
		PartitionMean: time.Duration(1+rng.IntN(4)) * time.Second,
		PartitionFor:  time.Duration(100+rng.IntN(1500)) * time.Millisecond,
		OneWayProb:    0.4,
		BreakMean:     time.Duration(1+rng.IntN(4)) * time.Second,
		SlowMean:      time.Duration(1+rng.IntN(5)) * time.Second,
		SlowLatency:   simnet.Latency{Base: 10 * time.Millisecond, Jitter: 60 * time.Millisecond},
		DiskFaults: simdisk.Faults{
			ReadEIO:  0.005 * rng.Float64(),
			WriteEIO: 0.002 * rng.Float64(),
			SyncEIO:  0.002 * rng.Float64(),
			NoSpace:  0.001 * rng.Float64(),
		},
		StoreFaults: objstore.FaultConfig{
			Throttle:        0.1 * rng.Float64(),
			TransientBefore: 0.1 * rng.Float64(),
			TransientAfter:  0.1 * rng.Float64(),
		},
	}
	if rng.IntN(4) == 0 {
		nem.DiskFaults = simdisk.Faults{}
	}
	// Code-site faults: now and then a safekeeper dies right after it votes
	// (the window an unpersisted vote would be lost in).
	if rng.IntN(3) != 0 {
		nem.Failpoints = []string{safekeeper.FailpointCrashAfterVote}
		nem.FailpointMean = time.Duration(50+rng.IntN(400)) * time.Millisecond
	}
	sim.Swarm(w, "nemesis", nem.String())
	// Media corruption on a minority of the safekeepers (docs/simulator.md,
	// Recoverable faults: the others are a majority, enough for safety and
	// liveness).
	corrupt := planCorruption(w, sks, segBytes, safety)

	w.UseNet(simnet.Options{Latency: lat, DeadLinkTimeout: 3 * time.Second})
	// Each planted bug goes to the package that honours it: the step
	// machines' to engine/skproto (both shells pass them on), the
	// safekeeper shell's own to safekeeper.Bugs.
	bugs := skproto.Bugs{
		VoteWithoutPersist:  w.Bug(BugVoteWithoutPersist),
		TruncateCommitted:   w.Bug(BugTruncateCommitted),
		CommitWithoutQuorum: w.Bug(BugCommitWithoutQuorum),
	}
	skBugs := safekeeper.Bugs{
		Acceptor:       bugs,
		AckBeforeFsync: w.Bug(BugAckBeforeFsync),
		ServeUnchecked: w.Bug(BugServeUnchecked),
	}
	h := newHistory(w)

	w.AddNode(brokerID, func(env node.Env) error {
		b, err := broker.New(env, broker.Config{ListenAddr: brokerAddr, EntryTTL: 5 * time.Second})
		if err != nil {
			return err
		}
		return b.Start()
	})
	var skAddrs []string
	for i := 1; i <= nSK; i++ {
		id, addr := skID(i), skAddr(i)
		skAddrs = append(skAddrs, addr)
		n := w.AddNode(id, func(env node.Env) error {
			sk, err := safekeeper.New(env, safekeeper.Config{NodeID: id, ListenAddr: addr, BrokerAddr: brokerAddr,
				SegmentBytes: segBytes, PublishInterval: 200 * time.Millisecond, OffloadInterval: 300 * time.Millisecond,
				Offload: true, OffloadBackoff: 20 * time.Millisecond, CallTimeout: time.Second, Bugs: skBugs,
				OnFatal: func(error) { w.Node(id).Crash(false) }})
			if err != nil {
				return err
			}
			return sk.Start(context.Background())
		})
		n.SetClock(time.Duration(rng.IntN(2000)-1000)*time.Millisecond, float64(rng.IntN(400)-200)*1e-6)
		n.SetDiskLatency(func(op string) time.Duration {
			if op == "sync" || op == "syncdir" {
				return time.Duration(1 + n.FaultRand().Int64N(int64(syncMax)))
			}
			return 0
		})
	}
	for _, id := range computes {
		c := &compute{id: id, h: h, sks: skAddrs, bugs: bugs, think: think, maxBuffer: wpBuffer, maxRecover: wpRecover}
		h.computes = append(h.computes, c)
		w.AddNode(id, func(env node.Env) error {
			c.incarnation = w.Node(id).Incarnation()
			env.Clock.Go(context.Background(), "workload", func(ctx context.Context) { c.work(ctx, env) })
			return nil
		})
	}
	nem.Linked = append(append(append([]string(nil), sks...), computes...), brokerID)

	w.Phase("safety")
	if err := w.StartNemesis(nem); err != nil {
		return err
	}
	corrupt.start()
	streamReader(w, h, skAddrs)
	w.Sleep(safety)
	corrupt.stopped = true
	if err := h.failure(); err != nil {
		return err
	}

	w.Phase("liveness")
	w.HealAll()
	// One writer from now on: competing computes would depose each other
	// forever, which is correct behaviour but not progress.
	for _, id := range computes[1:] {
		w.Stop(id)
	}
	h.healAt = w.Now()
	deadline := w.Now() + livenessBudget
	for !h.progressedSinceHeal() {
		if err := h.failure(); err != nil {
			return err
		}
		if w.Now() >= deadline {
			return fmt.Errorf("%w: no record committed %v after healing (%s)", ErrNoProgress, livenessBudget, h.progress())
		}
		w.Sleep(50 * time.Millisecond)
	}
	h.stopped = true

	w.Phase("check")
	a := &auditor{w: w, h: h, net: w.Net().Endpoint("auditor", w.Clock()), sks: sks, skAddrs: skAddrs,
		segBytes: lsn.LSN(segBytes), store: w.Store(), corrupt: corrupt}
	if err := a.check(context.Background()); err != nil {
		return err
	}
	return h.failure()
}

// ErrNoProgress is a liveness failure.
var ErrNoProgress = errors.New("wal: no progress after healing")

// compute is one compute node's workload: it runs walproposers (a new one
// after each defeat or restart) and appends records, waiting for commit.
type compute struct {
	id          string
	incarnation int
	h           *history
	sks         []string
	bugs        skproto.Bugs
	think       time.Duration
	maxBuffer   int
	maxRecover  int
	gen         int
	seq         int
}

func (c *compute) work(ctx context.Context, env node.Env) {
	inc := c.incarnation
	for {
		c.gen++
		pid := fmt.Sprintf("%s/%d.%d", c.id, inc, c.gen)
		wp, err := walproposer.New(env, walproposer.Config{ID: pid, TenantID: tenantID, TimelineID: timelineID,
			StartLSN: startLSN, Safekeepers: c.sks, PeerTimeout: time.Second, CallTimeout: time.Second,
			ReconnectBackoff: 20 * time.Millisecond, MaxReconnectBackoff: 500 * time.Millisecond,
			MaxAppendBytes: 2048, MaxInflightBytes: 16 << 10, MaxBufferBytes: c.maxBuffer, MaxRecoverBytes: c.maxRecover,
			Bugs: c.bugs, Observer: c.h})
		if err != nil {
			c.h.fail(fmt.Errorf("wal: %s: %w", pid, err))
			return
		}
		wp.Start(ctx)
		if !c.h.stopped {
			c.drive(ctx, env, wp, pid)
		}
		if c.h.stopped {
			// The audit needs a proposer to bring lagging safekeepers
			// up to the commit LSN: keep this one running, and replace
			// it if it steps aside (a recovery source found its copy
			// corrupt, say).
			for {
				if err := clock.Sleep(ctx, env.Clock, 100*time.Millisecond); err != nil {
					return
				}
				if st, err := wp.Status(ctx); err != nil || st.Err != nil {
					break
				}
			}
		}
		wp.Stop()
		if err := clock.Sleep(ctx, env.Clock, 50*time.Millisecond); err != nil {
			return
		}
	}
}

// drive appends batches until the proposer is defeated or the run stops.
func (c *compute) drive(ctx context.Context, env node.Env, wp *walproposer.WALProposer, pid string) {
	for !c.h.stopped {
		n := 1 + env.Rand.IntN(4)
		var recs [][]byte
		for i := 0; i < n; i++ {
			c.seq++
			size := env.Rand.IntN(maxRecordBytes)
			rec := fmt.Appendf(nil, "%s#%d:", pid, c.seq)
			for len(rec) < size {
				rec = append(rec, byte('a'+env.Rand.IntN(26)))
			}
			recs = append(recs, rec)
		}
		c.h.appended(recs)
		actx, cancel := clock.WithTimeout(env.Clock, ctx, opTimeout)
		end, err := wp.Append(actx, recs)
		cancel()
		if err != nil {
			if errors.Is(err, skproto.ErrDefeated) || ctx.Err() != nil {
				return
			}
			continue // not elected yet; try again
		}
		started := env.Clock.Mono()
		wctx, cancel := clock.WithTimeout(env.Clock, ctx, opTimeout)
		err = wp.WaitCommitted(wctx, end)
		cancel()
		switch {
		case err == nil:
			c.h.acked(recs, end, started)
		case errors.Is(err, skproto.ErrDefeated) || ctx.Err() != nil:
			return
		}
		if err := clock.Sleep(ctx, env.Clock, time.Duration(env.Rand.Int64N(int64(c.think)))); err != nil {
			return
		}
	}
}

// auditor runs the final checks through the network, as a client would.
type auditor struct {
	w        *sim.World
	h        *history
	net      net.Network
	sks      []string
	skAddrs  []string
	segBytes lsn.LSN
	store    objstore.Store
	corrupt  *corruptor
	// reported counts corrupted safekeepers that report their damage.
	reported int
}

func (a *auditor) status(ctx context.Context, addr string) (*skapi.TimelineStatus, error) {
	cctx, cancel := clock.WithTimeout(a.w.Clock(), ctx, time.Second)
	defer cancel()
	c, err := a.net.Dial(cctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return skapi.Status(cctx, c, tenantID, timelineID)
}

func (a *auditor) read(ctx context.Context, sk, addr string, start, end lsn.LSN) ([]byte, error) {
	cctx, cancel := clock.WithTimeout(a.w.Clock(), ctx, 5*time.Second)
	defer cancel()
	c, err := a.net.Dial(cctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var out []byte
	for pos := start; pos < end; {
		r, err := skapi.ReadWal(cctx, c, &skapi.ReadWalRequest{
			Timeline: skapi.Ref(tenantID, timelineID), StartLsn: uint64(pos), EndLsn: uint64(end)})
		if err != nil {
			return nil, err
		}
		if len(r.GetWal()) == 0 {
			return nil, fmt.Errorf("no WAL at %s", pos)
		}
		a.h.served(servedChunk{via: "ReadWal to the auditor", sk: sk, start: pos, wal: r.GetWal(), committed: true})
		out = append(out, r.GetWal()...)
		pos += lsn.LSN(len(r.GetWal()))
	}
	return out, nil
}

// check waits for every safekeeper to reach the final commit LSN, compares
// their WAL with each other and with the history, then waits for offload
// and compares the remote segments.
func (a *auditor) check(ctx context.Context) error {
	commit := a.h.maxCommit
	deadline := a.w.Now() + livenessBudget
	// Safekeepers that were never corrupted come first: the first of
	// them is the reference copy.
	order := slices.SortedStableFunc(slices.Values(a.sks), func(x, y string) int {
		return cmp.Compare(boolInt(a.corrupt.isTarget(x)), boolInt(a.corrupt.isTarget(y)))
	})
	var wals [][]byte
	var names []string
	for _, sk := range order {
		addr := a.skAddrs[slices.Index(a.sks, sk)]
		b, reported, err := a.catchUp(ctx, sk, addr, commit, deadline)
		if err != nil {
			return err
		}
		if reported {
			continue // checked by checkReported
		}
		wals, names = append(wals, b), append(names, sk)
	}
	for i := 1; i < len(wals); i++ {
		if at, differ := firstDiff(wals[0], wals[i]); differ {
			return fmt.Errorf("%w: %s and %s differ at %s (commit %s)", ErrDivergence, names[0], names[i], startLSN+lsn.LSN(at), commit)
		}
	}
	if err := a.h.checkFinal(wals[0], commit); err != nil {
		return err
	}
	if err := a.h.checkServed(wals[0], commit); err != nil {
		return err
	}
	// Offload: every sealed segment wholly below the commit LSN is in the
	// object store with exactly the committed bytes.
	for seg := startLSN / a.segBytes; (seg+1)*a.segBytes <= commit; seg++ {
		key := skapi.RemoteSegmentKey(tenantID, timelineID, uint64(seg))
		for {
			data, err := a.store.Get(ctx, key)
			if err == nil {
				lo := max(seg*a.segBytes, startLSN)
				want := wals[0][lo-startLSN : (seg+1)*a.segBytes-startLSN]
				got := data[lo-seg*a.segBytes:]
				if at, differ := firstDiff(want, got); differ || len(data) != int(a.segBytes) {
					return fmt.Errorf("%w: segment %s differs from the committed WAL at %s", ErrOffload, key, lo+lsn.LSN(at))
				}
				break
			}
			if !errors.Is(err, objstore.ErrNotFound) && !objstore.Retryable(err) {
				return fmt.Errorf("wal: reading %s: %w", key, err)
			}
			if a.w.Now() >= deadline {
				return fmt.Errorf("%w: segment %s not offloaded %v after healing", ErrNoProgress, key, livenessBudget)
			}
			a.w.Sleep(100 * time.Millisecond)
		}
	}
	if err := a.checkReported(ctx, wals[0], commit); err != nil {
		return err
	}
	if err := a.h.checkServed(wals[0], commit); err != nil {
		return err
	}
	a.w.Log().Info("wal checked", "commit", commit, "frames", len(a.h.committed), "acked", len(a.h.ackedAt), "elections", len(a.h.winners))
	a.w.Note(uint64(commit), uint64(len(a.h.committed)))
	return nil
}

// catchUp waits until sk's flush reaches commit and reads its WAL below
// commit. A safekeeper that answers DataLoss must be one the scenario
// corrupted (reported = true); any other must catch up.
func (a *auditor) catchUp(ctx context.Context, sk, addr string, commit lsn.LSN, deadline time.Duration) ([]byte, bool, error) {
	dataLoss := func(err error) (bool, error) {
		if net.CodeOf(err) != net.DataLoss {
			return false, nil
		}
		if !a.corrupt.isTarget(sk) {
			return false, fmt.Errorf("%w: %s: %v", ErrFalseCorruption, sk, err)
		}
		return true, nil
	}
	for {
		s, err := a.status(ctx, addr)
		if lost, lerr := dataLoss(err); lost || lerr != nil {
			return nil, lost, lerr
		}
		if err == nil && lsn.LSN(s.GetFlushLsn()) >= commit {
			break
		}
		if a.w.Now() >= deadline {
			return nil, false, fmt.Errorf("%w: %s did not catch up to commit %s (%v, %v)", ErrNoProgress, sk, commit, s, err)
		}
		a.w.Sleep(50 * time.Millisecond)
	}
	b, err := a.read(ctx, sk, addr, startLSN, commit)
	if lost, lerr := dataLoss(err); lost || lerr != nil {
		return nil, lost, lerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("wal: reading %s: %w", sk, err)
	}
	return b, false, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Checker errors.
var (
	ErrDivergence = errors.New("wal: acceptors differ at a committed LSN")
	ErrOffload    = errors.New("wal: offloaded segment differs from committed WAL")
)

func firstDiff(a, b []byte) (int, bool) {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i, true
		}
	}
	return n, len(a) != len(b)
}
