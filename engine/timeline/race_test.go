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
// simulated clock, crashes, and reopens: the durable disk_consistent_lsn
// must not go back, and every page at it must be there. (When GC installed
// the layer set and disk_consistent_lsn it had snapshotted before its
// metadata write, a flush that finished in between was undone: the
// metadata lost the flushed L0, the next Open deleted it as a leftover and
// disk_consistent_lsn went backwards.)
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
