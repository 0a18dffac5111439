package timeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layercache"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/simdisk"
)

// simDisk is a simdisk whose every operation takes 1-3 ms of the world's
// virtual time, so that tasks doing I/O interleave at every disk call.
func simDisk(w *sim.World) *simdisk.FS {
	rng := w.NewRand("disk-latency")
	return simdisk.New(simdisk.Options{
		Latency: func(string) time.Duration { return time.Duration(1+rng.IntN(3)) * time.Millisecond },
		Sleep:   w.Sleep,
	})
}

// runWorld runs body in a fresh world for seed and returns its error.
func runWorld(seed uint64, body func(w *sim.World) error) error {
	w := sim.New(sim.Options{Seed: seed, MaxVirtualTime: time.Hour})
	return w.Run(body)
}

// tasks starts fns as world tasks and returns a wait for all of them; the
// first error any returned is the wait's result.
func tasks(w *sim.World, fns map[string]func() error) func() error {
	c := w.Clock()
	wg := clock.NewWaitGroup(c)
	var first error
	names := make([]string, 0, len(fns))
	for n := range fns {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fn := fns[n]
		wg.Add(1)
		w.Go(n, func(context.Context) {
			defer wg.Done()
			if err := fn(); err != nil && first == nil {
				first = fmt.Errorf("%s: %w", n, err)
			}
		})
	}
	return func() error {
		if err := wg.Wait(context.Background()); err != nil {
			return err
		}
		return first
	}
}

// fpiModel is the model of a timeline fed only full-page images of a few
// blocks: a block's page at L is the newest image at or below L.
type fpiModel struct {
	recs []struct {
		at  lsn.LSN
		blk uint32
	}
}

func (m *fpiModel) page(blk uint32, at lsn.LSN) []byte {
	var p []byte
	for _, r := range m.recs {
		if r.at <= at && r.blk == blk {
			p = fpiPage(r.at)
		}
	}
	return p
}

func fpiPage(at lsn.LSN) []byte {
	return bytes.Repeat([]byte{byte(at), byte(at >> 8)}, walrec.PageSize/2)
}

func (m *fpiModel) ingest(tl *Timeline, at lsn.LSN, blk uint32) error {
	m.recs = append(m.recs, struct {
		at  lsn.LSN
		blk uint32
	}{at, blk})
	return tl.Ingest(at, walrec.FullPageImage{Rel: rel, Blk: blk, Page: fpiPage(at)})
}

// checkAt compares every block of tl at at with the model.
func (m *fpiModel) checkAt(tl *Timeline, at lsn.LSN, blocks uint32) error {
	for blk := uint32(0); blk < blocks; blk++ {
		got, err := tl.GetPage(keys.RelBlockKey(rel, blk), at)
		want := m.page(blk, at)
		switch {
		case want == nil && errors.Is(err, ErrNotFound):
		case err != nil:
			return fmt.Errorf("block %d at %s: %w", blk, at, err)
		case !bytes.Equal(got, want):
			return fmt.Errorf("block %d at %s: page differs from the model", blk, at)
		}
	}
	return nil
}

// TestGCBesideFlushKeepsDurableLayers runs GC beside flushes on the
// simulated clock, crashes, and reopens: every operation must succeed, the
// durable disk_consistent_lsn must not go back, and every page at it must be
// there. (When GC installed the layer set and disk_consistent_lsn it had
// snapshotted before its metadata write, a flush that finished in between
// was undone: the metadata lost the flushed L0 and the next Open deleted it
// as a leftover. That code fails every seed here: concurrent metadata
// writes collide on the temp file; with those errors tolerated, 8 of 20
// seeds lose pages at disk_consistent_lsn after the crash.)
func TestGCBesideFlushKeepsDurableLayers(t *testing.T) {
	const seeds, blocks = 20, 4
	failed := 0
	for seed := uint64(1); seed <= seeds; seed++ {
		err := runWorld(seed, func(w *sim.World) error {
			fs := simDisk(w)
			o := Options{FS: fs, Clock: w.Clock(), Dir: "tenant", Generation: 1}
			tn, err := Open(o)
			if err != nil {
				return err
			}
			tl, err := tn.Create(ID{1}, 0)
			if err != nil {
				return err
			}
			var m fpiModel
			at := lsn.LSN(0)
			var flushed lsn.LSN // the newest disk_consistent_lsn a Flush reported
			rng := w.NewRand("workload")
			wait := tasks(w, map[string]func() error{
				"writer": func() error {
					for round := 0; round < 12; round++ {
						for i := 0; i < 3; i++ {
							at += 8
							if err := m.ingest(tl, at, uint32(rng.IntN(blocks))); err != nil {
								return err
							}
						}
						if err := tl.Flush(); err != nil {
							return err
						}
						flushed = tl.DiskConsistentLSN()
					}
					return nil
				},
				"gc": func() error {
					for i := 0; i < 12; i++ {
						w.Sleep(time.Duration(rng.IntN(8)) * time.Millisecond)
						if _, err := tl.GCAt(tl.LastRecordLSN() / 2); err != nil {
							return err
						}
					}
					return nil
				},
			})
			if err := wait(); err != nil {
				return err
			}
			tn.Close()
			fs.Crash(rng, true)
			tn, err = Open(o)
			if err != nil {
				return fmt.Errorf("reopen: %w", err)
			}
			defer tn.Close()
			tl, err = tn.Get(ID{1})
			if err != nil {
				return err
			}
			dcl := tl.DiskConsistentLSN()
			if dcl < flushed {
				return fmt.Errorf("disk_consistent_lsn %s after the crash, flush had reported %s", dcl, flushed)
			}
			if dcl < tl.GCCutoff() {
				return nil // (a cutoff raised above the last record flushed)
			}
			return m.checkAt(tl, dcl, blocks)
		})
		if err != nil {
			failed++
			t.Errorf("seed %d: %v", seed, err)
		}
	}
	if failed > 0 {
		t.Logf("%d of seeds 1..%d failed", failed, seeds)
	}
}

// raceTL is the model of one timeline in the race test: its records (and
// its parent's below the branch point) give every page at every LSN.
type raceTL struct {
	id        ID
	parent    *raceTL
	branchLSN lsn.LSN
	recs      []raceRec // own records, increasing LSN
	tl        *Timeline
	dcl       lsn.LSN // newest disk_consistent_lsn seen
}

type raceRec struct {
	at  lsn.LSN
	blk uint32
	rec walrec.Record
}

// page is the redo of every record at or below at on m: an image sets the
// page, a write patches it (a zero page if it has no base); nil if the
// block has no value.
func (m *raceTL) page(blk uint32, at lsn.LSN) []byte {
	var p []byte
	if m.parent != nil {
		p = m.parent.page(blk, min(at, m.branchLSN))
	}
	for _, r := range m.recs {
		if r.at > at {
			break
		}
		if r.blk != blk {
			continue
		}
		if p == nil {
			p = make([]byte, walrec.PageSize) // fresh: patched in place below
		}
		switch x := r.rec.(type) {
		case walrec.FullPageImage:
			copy(p, x.Page)
		case walrec.PageWrite:
			copy(p[x.Offset:], x.Data)
		}
	}
	return p
}

// Shape of a race run: blocks per timeline, records ingested, the bounds
// (ms) of the random pauses between an editor's operations and between a
// reader's reads, and of a slow read's hold on its versions.
const (
	raceBlocks    = 4
	raceRecords   = 120
	raceEditPause = 10
	raceReadPause = 4
	raceSlowRead  = 5
)

// raceRun is one seed of TestReadersRaceLayerEdits: an ingest task, a
// flusher, a compactor, a GC and a brancher change the layer sets of a few
// timelines while three readers read pages at random LSNs, all on the
// simulated clock with every disk operation a scheduling point. Every read
// must equal the model, or be refused with ErrBelowGCCutoff if (and only
// if) its LSN is below the cutoff by the time it returns; every operation
// must succeed; disk_consistent_lsn never goes back, not even across the
// crash at the end. cache, if not nil, is the tenant's open-file cache.
func raceRun(seed uint64, bugs Bugs, cache *layercache.Cache) error {
	return runWorld(seed, func(w *sim.World) error {
		fs := simDisk(w)
		o := Options{FS: fs, Clock: w.Clock(), Dir: "tenant", Generation: 1, Bugs: bugs, LayerCache: cache, Config: Config{
			CheckpointDistanceBytes:   16 << 10,
			CompactionThreshold:       2,
			ImageCreationThreshold:    1,
			CompactionTargetSizeBytes: 8 << 10,
		}}
		tn, err := Open(o)
		if err != nil {
			return err
		}
		root, err := tn.Create(ID{1}, 0)
		if err != nil {
			return err
		}
		tls := []*raceTL{{id: ID{1}, tl: root}}
		rng := w.NewRand("race")
		pick := func() *raceTL { return tls[rng.IntN(len(tls))] }
		done := false
		pause := func(ms int) { w.Sleep(time.Duration(rng.IntN(ms)) * time.Millisecond) }
		loop := func(ms int, op func() error) func() error {
			return func() error {
				for !done {
					pause(ms)
					if err := op(); err != nil {
						return err
					}
				}
				return nil
			}
		}
		reads, refused := 0, 0
		reader := func() error {
			m := pick()
			c0, last := m.tl.GCCutoff(), m.tl.LastRecordLSN()
			if dcl := m.tl.DiskConsistentLSN(); dcl < m.dcl {
				return fmt.Errorf("%s: disk_consistent_lsn went back from %s to %s", m.id, m.dcl, dcl)
			} else {
				m.dcl = dcl
			}
			// Mostly at or above the cutoff, where reads must be answered;
			// sometimes just below it.
			lo := max(c0, 1)
			if c0 > 1 && rng.IntN(5) == 0 {
				lo = max(1, c0-lsn.LSN(rng.IntN(64)))
			}
			if lo > last {
				return nil
			}
			at := lo + lsn.LSN(rng.Uint64N(uint64(last-lo)+1))
			var want [raceBlocks][]byte
			var blks []uint32
			var ks []keys.Key
			for blk := uint32(0); blk < raceBlocks; blk++ {
				if want[blk] = m.page(blk, at); want[blk] != nil {
					blks, ks = append(blks, blk), append(ks, keys.RelBlockKey(rel, blk))
				}
			}
			var got [][]byte
			var err error
			switch {
			case len(ks) == 0 || rng.IntN(3) == 0:
				blks = []uint32{uint32(rng.IntN(raceBlocks))}
				var p []byte
				p, err = m.tl.GetPage(keys.RelBlockKey(rel, blks[0]), at)
				got = [][]byte{p}
			case rng.IntN(2) == 0:
				got, err = m.tl.GetPages(ks, at)
			default:
				// A slow read: it pins its versions, then takes its time
				// (a stream the client drains slowly, a preempted task)
				// before it searches them, so edits land while it holds
				// them. The simulator switches tasks only at waits; this
				// one waits where a real read would be preempted.
				var s *readScratch
				if s, err = m.tl.beginRead(at); err == nil {
					w.Sleep(time.Duration(1+rng.IntN(raceSlowRead)) * time.Millisecond)
					for _, k := range ks {
						var p []byte
						if p, err = appendPage(nil, k, at, s); err != nil {
							break
						}
						got = append(got, p)
					}
				}
				m.tl.endRead(s)
			}
			c1 := m.tl.GCCutoff()
			reads++
			switch {
			case errors.Is(err, ErrBelowGCCutoff) && at < c1:
				refused++
				return nil
			case at < c0:
				return fmt.Errorf("%s: read of blocks %v at %s below the cutoff %s answered: %v", m.id, blks, at, c0, err)
			case len(blks) == 1 && want[blks[0]] == nil && errors.Is(err, ErrNotFound):
				return nil
			case err != nil:
				return fmt.Errorf("%s: read of blocks %v at %s (cutoff %s..%s): %w", m.id, blks, at, c0, c1, err)
			}
			for i, blk := range blks {
				if !bytes.Equal(got[i], want[blk]) {
					return fmt.Errorf("%s: read of block %d at %s: page differs from the model", m.id, blk, at)
				}
			}
			return nil
		}
		branches, compacted, freed := 0, 0, 0
		wait := tasks(w, map[string]func() error{
			"ingest": func() error {
				defer func() { done = true }()
				for i := 0; i < raceRecords; i++ {
					m := pick()
					at := m.tl.LastRecordLSN() + lsn.LSN(1+rng.IntN(8))
					r := raceRec{at: at, blk: uint32(rng.IntN(raceBlocks))}
					if rng.IntN(3) == 0 {
						r.rec = walrec.FullPageImage{Rel: rel, Blk: r.blk, Page: bytes.Repeat([]byte{byte(at)}, walrec.PageSize)}
					} else {
						r.rec = walrec.PageWrite{Rel: rel, Blk: r.blk, Offset: uint16(rng.IntN(walrec.PageSize - 8)), Data: []byte{byte(at), byte(at >> 8), 1, 2}}
					}
					m.recs = append(m.recs, r) // before Ingest: readers may see it at once
					if err := m.tl.Ingest(at, r.rec); err != nil {
						return err
					}
					pause(3)
				}
				return nil
			},
			"flush": loop(raceEditPause, func() error { return pick().tl.Flush() }),
			"compact": loop(raceEditPause, func() error {
				st, err := pick().tl.Compact()
				compacted += st.L0Merged + st.ImagesWritten
				return err
			}),
			"gc": loop(raceEditPause, func() error {
				m := pick()
				last := m.tl.LastRecordLSN()
				st, err := m.tl.GCAt(last - min(last, lsn.LSN(rng.IntN(64))))
				freed += st.LayersRemoved
				return err
			}),
			"branch": loop(raceEditPause, func() error {
				if len(tls) >= 4 {
					return nil
				}
				w.Sleep(20 * time.Millisecond)
				p := pick()
				c, last := p.tl.GCCutoff(), p.tl.LastRecordLSN()
				if last <= c {
					return nil
				}
				at := max(c, 1) + lsn.LSN(rng.Uint64N(uint64(last-max(c, 1))+1))
				id := ID{byte(len(tls) + 1)}
				child, err := tn.Branch(p.id, id, at)
				if errors.Is(err, ErrBelowGCCutoff) && at < p.tl.GCCutoff() {
					return nil // a GC moved the cutoff past at first
				}
				if err != nil {
					return err
				}
				branches++
				tls = append(tls, &raceTL{id: id, parent: p, branchLSN: at, tl: child, dcl: at})
				return nil
			}),
			"reader-1": loop(raceReadPause, reader),
			"reader-2": loop(raceReadPause, reader),
			"reader-3": loop(raceReadPause, reader),
		})
		if err := wait(); err != nil {
			return err
		}
		rebased := 0
		for _, m := range tls {
			m.tl.mu.Lock()
			rebased += m.tl.rebased
			m.tl.mu.Unlock()
		}
		if reads < 100 || refused == 0 || branches == 0 || compacted == 0 || freed == 0 || rebased == 0 {
			return fmt.Errorf("%w: %d reads (%d refused), %d branches, %d layers compacted, %d freed by GC, %d edits rebased",
				errThinRun, reads, refused, branches, compacted, freed, rebased)
		}
		// Crash and reopen: nothing at or below a disk_consistent_lsn seen
		// is lost.
		for _, m := range tls {
			m.dcl = m.tl.DiskConsistentLSN()
		}
		fs.Crash(rng, true)
		if tn, err = Open(o); err != nil {
			return fmt.Errorf("reopen: %w", err)
		}
		defer tn.Close()
		for _, m := range tls {
			tl, err := tn.Get(m.id)
			if err != nil {
				return err
			}
			dcl := tl.DiskConsistentLSN()
			if dcl < m.dcl {
				return fmt.Errorf("%s: disk_consistent_lsn went back from %s to %s across the crash", m.id, m.dcl, dcl)
			}
			if dcl < tl.GCCutoff() {
				continue
			}
			for blk := uint32(0); blk < raceBlocks; blk++ {
				got, err := tl.GetPage(keys.RelBlockKey(rel, blk), dcl)
				want := m.page(blk, dcl)
				if !(want == nil && errors.Is(err, ErrNotFound)) && (err != nil || !bytes.Equal(got, want)) {
					return fmt.Errorf("%s: block %d at %s after the crash: %v", m.id, blk, dcl, err)
				}
			}
		}
		return nil
	})
}

// errThinRun reports a race run that passed its checks but exercised too
// little (too few reads, or no branch, compaction, GC or rebase).
var errThinRun = errors.New("the run exercised too little")

// raceSeeds are the seeds the race test runs, with and without the planted
// bug.
const raceSeeds = 20

// TestReadersRaceLayerEdits runs raceRun on seeds 1..raceSeeds.
func TestReadersRaceLayerEdits(t *testing.T) {
	for seed := uint64(1); seed <= raceSeeds; seed++ {
		if err := raceRun(seed, Bugs{}, nil); err != nil {
			t.Errorf("seed %d: %v", seed, err)
		}
	}
}

// TestReadersRaceWithFewOpenFiles is TestReadersRaceLayerEdits with an
// open-file cache of two files: readers, compaction (reading its inputs
// and the pages of its images) and flush reopen layer files the cache
// closed, all interleaved with edits that replace and delete layers, and
// every read must still agree with the model. Each of the run's eight
// tasks pins or opens at most one layer file at a time, so no more than
// eight are ever open.
func TestReadersRaceWithFewOpenFiles(t *testing.T) {
	const limit, tasks = 2, 8
	var reopens, overLimit uint64
	peak, thin := 0, 0
	for seed := uint64(1); seed <= raceSeeds; seed++ {
		cache, err := layercache.New(layercache.Config{MaxOpenFiles: limit})
		if err != nil {
			t.Fatal(err)
		}
		// Reopening takes disk time (the header and index are read and
		// checked again), which changes how the tasks interleave: a seed
		// may then do too little (say, no GC that frees a layer), which
		// is no error here as long as half the seeds do enough.
		if err := raceRun(seed, Bugs{}, cache); errors.Is(err, errThinRun) {
			thin++
			t.Logf("seed %d: %v", seed, err)
		} else if err != nil {
			t.Errorf("seed %d: %v", seed, err)
		}
		st := cache.Stats()
		reopens += st.Reopens
		overLimit += st.OverLimit
		peak = max(peak, st.Peak)
	}
	t.Logf("seeds 1..%d, limit %d: %d reopens, %d opens over the limit, peak %d open", raceSeeds, limit, reopens, overLimit, peak)
	if reopens == 0 {
		t.Fatal("no layer file was reopened: the cache never closed one under the run")
	}
	if thin > raceSeeds/2 {
		t.Fatalf("%d of %d seeds exercised too little", thin, raceSeeds)
	}
	if peak > tasks {
		t.Fatalf("%d layer files open at once, more than the %d tasks can pin", peak, tasks)
	}
}

// TestReadersRaceCatchesEarlyDelete plants "delete a replaced layer before
// its last reader lets go" and requires raceRun to catch it on at least
// one of seeds 1..raceSeeds (the ones TestReadersRaceLayerEdits passes).
func TestReadersRaceCatchesEarlyDelete(t *testing.T) {
	caught := 0
	for seed := uint64(1); seed <= raceSeeds; seed++ {
		if err := raceRun(seed, Bugs{DeleteReplacedEarly: true}, nil); err != nil {
			caught++
			if caught == 1 {
				t.Logf("seed %d: %v", seed, err)
			}
		}
	}
	t.Logf("the planted bug failed %d of seeds 1..%d", caught, raceSeeds)
	if caught == 0 {
		t.Fatalf("no seed of 1..%d caught a layer deleted under its readers", raceSeeds)
	}
}
