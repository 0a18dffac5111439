package pagemodel

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

var rels = []keys.RelTag{
	{SpcNode: 1663, DbNode: 5, RelNode: 16384},
	{SpcNode: 1663, DbNode: 5, RelNode: 16390, ForkNum: keys.ForkFSM},
}

const blocks = 4

type rec struct {
	at  lsn.LSN
	rec walrec.Record
}

// mtl is the model of one timeline.
type mtl struct {
	id        timeline.ID
	parent    *mtl
	branchLSN lsn.LSN
	recs      []rec // own records, increasing LSN
	last      lsn.LSN
	cutoff    lsn.LSN
	// durableCutoff is the newest cutoff a GC reported durable; after a
	// failed GC the engine may come back anywhere in [durableCutoff, cutoff].
	durableCutoff lsn.LSN
	dcl           lsn.LSN // the last disk_consistent_lsn seen from the engine
}

// history lists the records visible to a read at at, oldest first.
func (m *mtl) history(at lsn.LSN) []rec {
	var out []rec
	if m.parent != nil {
		out = m.parent.history(min(at, m.branchLSN))
	}
	for _, r := range m.recs {
		if r.at <= at {
			out = append(out, r)
		}
	}
	return out
}

// page computes a block at at by replaying the history; nil if it never
// existed.
func (m *mtl) page(rl keys.RelTag, blk uint32, at lsn.LSN) []byte {
	var p []byte
	for _, r := range m.history(at) {
		switch x := r.rec.(type) {
		case walrec.FullPageImage:
			if x.Rel == rl && x.Blk == blk {
				p = bytes.Clone(x.Page)
			}
		case walrec.PageWrite:
			if x.Rel == rl && x.Blk == blk {
				if p == nil {
					p = make([]byte, walrec.PageSize)
				}
				copy(p[x.Offset:], x.Data)
			}
		}
	}
	return p
}

// size computes a relation's size at at; ok is false if it does not exist.
func (m *mtl) size(rl keys.RelTag, at lsn.LSN) (n uint32, ok bool) {
	for _, r := range m.history(at) {
		switch x := r.rec.(type) {
		case walrec.RelSizeChange:
			if x.Rel == rl {
				n, ok = x.NBlocks, true
			}
		case walrec.RelDrop:
			if x.Rel == rl {
				n, ok = 0, false
			}
		}
	}
	return n, ok
}

type machine struct {
	rng    *rand.Rand
	fs     *simdisk.FS
	cfg    timeline.Config
	tenant *timeline.Tenant
	tls    []*mtl // creation order: parents before children
	cov    *coverage
}

// coverage counts what the runs exercised, so the test can prove that
// compaction, image creation, GC removal, branching and crashes happened.
type coverage struct {
	steps, l1, images, gcRemoved, branches, crashes, reads, faultErrs, scans int
}

func (s *machine) open(t *rapid.T) {
	tn, err := timeline.Open(timeline.Options{FS: s.fs, Clock: clock.NewReal(), Dir: "tenant", Config: s.cfg, Generation: 3})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	s.tenant = tn
}

func (s *machine) engine(t *rapid.T, m *mtl) *timeline.Timeline {
	tl, err := s.tenant.Get(m.id)
	if err != nil {
		t.Fatalf("get %s: %v", m.id, err)
	}
	return tl
}

func (s *machine) pick(t *rapid.T) *mtl {
	return s.tls[rapid.IntRange(0, len(s.tls)-1).Draw(t, "timeline")]
}

// readable draws an LSN a read may use on m, or reports none.
func readable(t *rapid.T, m *mtl) (lsn.LSN, bool) {
	lo := max(m.cutoff, 1)
	if m.last < lo {
		return 0, false
	}
	// Favour the newest LSN, where pages are read most.
	if rapid.IntRange(0, 3).Draw(t, "newest") == 0 {
		return m.last, true
	}
	return lsn.LSN(rapid.Uint64Range(uint64(lo), uint64(m.last)).Draw(t, "at")), true
}

func genRecord(t *rapid.T) walrec.Record {
	rl := rels[rapid.IntRange(0, len(rels)-1).Draw(t, "rel")]
	blk := uint32(rapid.IntRange(0, blocks-1).Draw(t, "blk"))
	switch rapid.IntRange(0, 9).Draw(t, "kind") {
	case 0, 1:
		fill := byte(rapid.IntRange(0, 255).Draw(t, "fill"))
		return walrec.FullPageImage{Rel: rl, Blk: blk, Page: bytes.Repeat([]byte{fill}, walrec.PageSize)}
	case 2, 3, 4, 5:
		n := rapid.IntRange(1, 64).Draw(t, "len")
		off := rapid.IntRange(0, walrec.PageSize-n).Draw(t, "off")
		data := rapid.SliceOfN(rapid.Byte(), n, n).Draw(t, "data")
		return walrec.PageWrite{Rel: rl, Blk: blk, Offset: uint16(off), Data: data}
	case 6, 7:
		return walrec.RelSizeChange{Rel: rl, NBlocks: uint32(rapid.IntRange(0, blocks).Draw(t, "nblocks"))}
	case 8:
		return walrec.RelDrop{Rel: rl}
	}
	return walrec.LogicalMessage{Prefix: "bench", Payload: []byte("x")}
}

func (s *machine) put(t *rapid.T) {
	m := s.pick(t)
	at := m.last + lsn.LSN(rapid.IntRange(1, 40).Draw(t, "gap"))
	r := genRecord(t)
	if err := s.engine(t, m).Ingest(at, r); err != nil {
		t.Fatalf("ingest %T at %s on %s: %v", r, at, m.id, err)
	}
	m.recs = append(m.recs, rec{at, r})
	m.last = at
}

// putMany ingests a burst of records into one timeline, so that runs reach
// several flushed layers, compactions and image layers.
func (s *machine) putMany(t *rapid.T) {
	m := s.pick(t)
	tl := s.engine(t, m)
	n := rapid.IntRange(2, 20).Draw(t, "burst")
	for i := 0; i < n; i++ {
		at := m.last + lsn.LSN(rapid.IntRange(1, 40).Draw(t, "gap"))
		r := genRecord(t)
		if err := tl.Ingest(at, r); err != nil {
			t.Fatalf("ingest %T at %s on %s: %v", r, at, m.id, err)
		}
		m.recs = append(m.recs, rec{at, r})
		m.last = at
	}
}

func (s *machine) checkPage(t *rapid.T, m *mtl, rl keys.RelTag, blk uint32, at lsn.LSN, got []byte, err error) {
	want := m.page(rl, blk, at)
	if want == nil {
		if !errors.Is(err, timeline.ErrNotFound) {
			t.Fatalf("%s: %s blk %d at %s: got %v (%d bytes), want not found", m.id, rl, blk, at, err, len(got))
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %s blk %d at %s: %v", m.id, rl, blk, at, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %s blk %d at %s: page differs from the model", m.id, rl, blk, at)
	}
}

func (s *machine) read(t *rapid.T) {
	m := s.pick(t)
	at, ok := readable(t, m)
	if !ok {
		t.Skip("nothing readable")
	}
	rl := rels[rapid.IntRange(0, len(rels)-1).Draw(t, "rel")]
	blk := uint32(rapid.IntRange(0, blocks-1).Draw(t, "blk"))
	got, err := s.engine(t, m).GetPage(keys.RelBlockKey(rl, blk), at)
	s.cov.reads++
	s.checkPage(t, m, rl, blk, at, got, err)
}

func (s *machine) readBatch(t *rapid.T) {
	m := s.pick(t)
	at, ok := readable(t, m)
	if !ok {
		t.Skip("nothing readable")
	}
	rl := rels[0]
	var ks []keys.Key
	var blks []uint32
	for b := uint32(0); b < blocks; b++ {
		if m.page(rl, b, at) != nil {
			ks, blks = append(ks, keys.RelBlockKey(rl, b)), append(blks, b)
		}
	}
	got, err := s.engine(t, m).GetPages(ks, at)
	if err != nil {
		t.Fatalf("%s: batch at %s: %v", m.id, at, err)
	}
	for i, b := range blks {
		s.checkPage(t, m, rl, b, at, got[i], nil)
	}
}

func (s *machine) relSize(t *rapid.T) {
	m := s.pick(t)
	at, ok := readable(t, m)
	if !ok {
		t.Skip("nothing readable")
	}
	rl := rels[rapid.IntRange(0, len(rels)-1).Draw(t, "rel")]
	n, err := s.engine(t, m).RelSize(rl, at)
	wn, wok := m.size(rl, at)
	switch {
	case !wok && !errors.Is(err, timeline.ErrNotFound):
		t.Fatalf("%s: size of %s at %s: %d, %v; want not found", m.id, rl, at, n, err)
	case wok && (err != nil || n != wn):
		t.Fatalf("%s: size of %s at %s: %d, %v; want %d", m.id, rl, at, n, err, wn)
	}
}

func (s *machine) readBelowCutoff(t *rapid.T) {
	m := s.pick(t)
	if m.cutoff <= 1 {
		t.Skip("no LSN below the cutoff")
	}
	at := lsn.LSN(rapid.Uint64Range(1, uint64(m.cutoff-1)).Draw(t, "at"))
	if _, err := s.engine(t, m).GetPage(keys.RelBlockKey(rels[0], 0), at); !errors.Is(err, timeline.ErrBelowGCCutoff) {
		t.Fatalf("%s: read at %s below cutoff %s: %v", m.id, at, m.cutoff, err)
	}
}

func (s *machine) flush(t *rapid.T) {
	m := s.pick(t)
	tl := s.engine(t, m)
	if err := tl.Flush(); err != nil {
		t.Fatalf("flush %s: %v", m.id, err)
	}
	if got := tl.DiskConsistentLSN(); got != m.last {
		t.Fatalf("%s: after flush disk_consistent_lsn %s, last record %s", m.id, got, m.last)
	}
}

func (s *machine) compact(t *rapid.T) {
	m := s.pick(t)
	st, err := s.engine(t, m).Compact()
	if err != nil {
		t.Fatalf("compact %s: %v", m.id, err)
	}
	s.cov.l1 += st.L1Written
	s.cov.images += st.ImagesWritten
}

func (s *machine) gc(t *rapid.T) {
	m := s.pick(t)
	// Advance a little, or jump to near the newest record.
	c := m.cutoff + lsn.LSN(rapid.IntRange(0, 200).Draw(t, "advance"))
	if m.last > m.cutoff && rapid.Bool().Draw(t, "jump") {
		c = m.last - lsn.LSN(rapid.Uint64Range(0, uint64(m.last-m.cutoff)/4).Draw(t, "behind"))
	}
	st, err := s.engine(t, m).GCAt(c)
	if err != nil {
		t.Fatalf("gc %s at %s: %v", m.id, c, err)
	}
	m.cutoff = max(m.cutoff, min(c, m.last))
	m.durableCutoff = m.cutoff
	s.cov.gcRemoved += st.LayersRemoved
	if st.Cutoff != m.cutoff {
		t.Fatalf("%s: gc cutoff %s, model %s", m.id, st.Cutoff, m.cutoff)
	}
}

func (s *machine) branch(t *rapid.T) {
	if len(s.tls) >= 5 {
		t.Skip("enough timelines")
	}
	p := s.pick(t)
	id := timeline.ID{byte(len(s.tls) + 1)}
	if p.cutoff > 1 && rapid.IntRange(0, 4).Draw(t, "below") == 0 {
		at := lsn.LSN(rapid.Uint64Range(1, uint64(p.cutoff-1)).Draw(t, "at"))
		if _, err := s.tenant.Branch(p.id, id, at); !errors.Is(err, timeline.ErrBelowGCCutoff) {
			t.Fatalf("branch of %s at %s below cutoff %s: %v", p.id, at, p.cutoff, err)
		}
		return
	}
	at, ok := readable(t, p)
	if !ok {
		t.Skip("nothing to branch from")
	}
	if _, err := s.tenant.Branch(p.id, id, at); err != nil {
		t.Fatalf("branch of %s at %s: %v", p.id, at, err)
	}
	s.cov.branches++
	s.tls = append(s.tls, &mtl{id: id, parent: p, branchLSN: at, last: at, cutoff: at, durableCutoff: at, dcl: at})
}

func (s *machine) crash(t *rapid.T) {
	for _, m := range s.tls {
		m.dcl = s.engine(t, m).DiskConsistentLSN()
	}
	s.fs.Crash(s.rng, rapid.Bool().Draw(t, "tear"))
	s.cov.crashes++
	s.open(t)
	for _, m := range s.tls { // parents first
		tl := s.engine(t, m)
		dcl := tl.DiskConsistentLSN()
		if dcl < m.dcl {
			t.Fatalf("%s: disk_consistent_lsn went back from %s to %s", m.id, m.dcl, dcl)
		}
		if got := tl.GCCutoff(); got < m.durableCutoff || got > m.cutoff {
			t.Fatalf("%s: gc cutoff after crash %s, model [%s, %s]", m.id, got, m.durableCutoff, m.cutoff)
		}
		m.cutoff = tl.GCCutoff()
		m.durableCutoff = m.cutoff
		// Re-ingest the WAL above the consistent LSN.
		for _, r := range m.recs {
			if r.at > dcl {
				if err := tl.Ingest(r.at, r.rec); err != nil {
					t.Fatalf("%s: re-ingest at %s: %v", m.id, r.at, err)
				}
			}
		}
		if m.last > tl.LastRecordLSN() {
			// Trailing records that change no page leave nothing to
			// re-ingest; what remains is the LSN the caller resumes from.
			t.Fatalf("%s: last record %s after re-ingest, model %s", m.id, tl.LastRecordLSN(), m.last)
		}
	}
}

// faulty runs one operation with disk faults switched on. A read must be
// right or fail; a write may fail, after which the node restarts (crash and
// reopen), as a pageserver does after an I/O error: nothing durable may be
// lost and no read may be wrong afterwards.
func (s *machine) faulty(t *rapid.T) {
	m := s.pick(t)
	tl := s.engine(t, m)
	s.fs.SetFaults(s.rng, simdisk.Faults{ReadEIO: 0.05, WriteEIO: 0.2, SyncEIO: 0.2, NoSpace: 0.05})
	var err error
	switch rapid.IntRange(0, 4).Draw(t, "faulty_op") {
	case 4:
		// A FPI fills a small open layer, so its flush runs under faults.
		at := m.last + lsn.LSN(rapid.IntRange(1, 40).Draw(t, "gap"))
		r := walrec.FullPageImage{Rel: rels[1], Blk: 0, Page: bytes.Repeat([]byte{byte(at)}, walrec.PageSize)}
		err = tl.Ingest(at, r)
		if err != nil && !errors.Is(err, timeline.ErrFlushFailed) {
			t.Fatalf("ingest under faults: %v", err)
		}
		m.recs = append(m.recs, rec{at, r})
		m.last = at
	case 0:
		err = tl.Flush()
	case 1:
		_, err = tl.Compact()
	case 2:
		c := m.cutoff + lsn.LSN(rapid.IntRange(0, 400).Draw(t, "advance"))
		var st timeline.GCStats
		st, err = tl.GCAt(c)
		m.cutoff = max(m.cutoff, min(c, m.last))
		if err == nil {
			m.durableCutoff = m.cutoff
			s.cov.gcRemoved += st.LayersRemoved
		}
	case 3:
		at, ok := readable(t, m)
		if ok {
			blk := uint32(rapid.IntRange(0, blocks-1).Draw(t, "blk"))
			var got []byte
			got, err = tl.GetPage(keys.RelBlockKey(rels[0], blk), at)
			if err == nil || errors.Is(err, timeline.ErrNotFound) {
				s.checkPage(t, m, rels[0], blk, at, got, err)
				err = nil
			}
		}
	}
	s.fs.SetFaults(s.rng, simdisk.Faults{})
	if err != nil {
		s.cov.faultErrs++
		// Either restart at once, or carry on: a failed flush, compaction
		// or GC leaves the timeline usable, and the operation can be
		// retried (every file is rewritten whole, never patched).
		if rapid.Bool().Draw(t, "restart") {
			s.crash(t)
		}
	}
}

func (s *machine) check(t *rapid.T) {
	s.cov.steps++
	for _, m := range s.tls {
		tl := s.engine(t, m)
		if got := tl.LastRecordLSN(); got != m.last {
			t.Fatalf("%s: last record %s, model %s", m.id, got, m.last)
		}
		if dcl := tl.DiskConsistentLSN(); dcl > m.last {
			t.Fatalf("%s: disk_consistent_lsn %s above last record %s", m.id, dcl, m.last)
		}
	}
}

func TestPageEngineModel(t *testing.T) {
	var cov coverage
	// rapid draws a fresh seed per run, so a rare path (a GC that removes a
	// layer) is sometimes missed in one round of examples: run further
	// rounds, at most maxCoverageRounds, until every path was exercised.
	const maxCoverageRounds = 5
	for round := 0; round < maxCoverageRounds && (round == 0 || !cov.complete()); round++ {
		checkModel(t, &cov)
	}
	t.Logf("coverage: %+v", cov)
	if cov.steps < 1000 {
		t.Fatalf("only %d steps ran, want at least 1000", cov.steps)
	}
	if !cov.complete() {
		t.Fatalf("an engine path was never exercised in %d rounds: %+v", maxCoverageRounds, cov)
	}
}

func (cov coverage) complete() bool {
	return cov.l1 > 0 && cov.images > 0 && cov.gcRemoved > 0 && cov.branches > 0 && cov.crashes > 0 && cov.faultErrs > 0 && cov.scans > 0
}

func checkModel(t *testing.T, cov *coverage) {
	rapid.Check(t, func(t *rapid.T) {
		s := &machine{
			rng: rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 7)),
			fs:  simdisk.New(simdisk.Options{}),
			cfg: timeline.Config{
				CheckpointDistanceBytes:   int64(rapid.SampledFrom([]int{4 << 10, 64 << 10, 1 << 20}).Draw(t, "checkpoint")),
				CompactionThreshold:       rapid.IntRange(2, 4).Draw(t, "compaction_threshold"),
				CompactionTargetSizeBytes: int64(rapid.SampledFrom([]int{8 << 10, 16 << 10, 1 << 20}).Draw(t, "target")),
				ImageCreationThreshold:    rapid.IntRange(1, 3).Draw(t, "image_threshold"),
			},
			cov: cov,
		}
		s.open(t)
		root := timeline.ID{0xEE}
		init := lsn.LSN(rapid.IntRange(0, 100).Draw(t, "init"))
		if _, err := s.tenant.Create(root, init); err != nil {
			t.Fatal(err)
		}
		s.tls = []*mtl{{id: root, last: init, cutoff: init, durableCutoff: init, dcl: init}}
		t.Repeat(map[string]func(*rapid.T){
			"put":             s.put,
			"put2":            s.put,
			"putMany":         s.putMany,
			"putMany2":        s.putMany,
			"flush2":          s.flush,
			"read":            s.read,
			"read2":           s.read,
			"readBatch":       s.readBatch,
			"relSize":         s.relSize,
			"scan":            s.scan,
			"readBelowCutoff": s.readBelowCutoff,
			"flush":           s.flush,
			"compact":         s.compact,
			"gc":              s.gc,
			"branch":          s.branch,
			"crash":           s.crash,
			"faulty":          s.faulty,
			"":                s.check,
		})
		s.tenant.Close()
	})
}

// Example of the error text a failing read produces, kept so that a change in
// wording is a conscious one.
func TestModelSelfCheck(t *testing.T) {
	m := &mtl{id: timeline.ID{1}}
	rl := rels[0]
	m.recs = []rec{
		{10, walrec.PageWrite{Rel: rl, Blk: 1, Offset: 2, Data: []byte{7}}},
		{20, walrec.FullPageImage{Rel: rl, Blk: 1, Page: bytes.Repeat([]byte{9}, walrec.PageSize)}},
		{30, walrec.RelSizeChange{Rel: rl, NBlocks: 2}},
		{40, walrec.RelDrop{Rel: rl}},
	}
	child := &mtl{id: timeline.ID{2}, parent: m, branchLSN: 25}
	cases := []struct {
		m    *mtl
		at   lsn.LSN
		want string
	}{
		{m, 5, "page=false size=0,false"},
		{m, 10, "page=true[2]=7 size=0,false"},
		{m, 30, "page=true[2]=9 size=2,true"},
		{m, 40, "page=true[2]=9 size=0,false"},
		{child, 40, "page=true[2]=9 size=0,false"},
	}
	for _, c := range cases {
		p := c.m.page(rl, 1, c.at)
		n, ok := c.m.size(rl, c.at)
		got := fmt.Sprintf("page=%v", p != nil)
		if p != nil {
			got += fmt.Sprintf("[2]=%d", p[2])
		}
		got += fmt.Sprintf(" size=%d,%v", n, ok)
		if got != c.want {
			t.Errorf("at %s: %s, want %s", c.at, got, c.want)
		}
	}
	_ = slices.Clone(m.recs)
}
