package persist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/sim/simdisk"
)

const testDir = "storcon"

func testShard(b byte, n, count uint8) TenantShard {
	var tid shard.TenantID
	for i := range tid {
		tid[i] = b
	}
	return TenantShard{
		ID:               shard.TenantShardID{TenantID: tid, Shard: shard.ShardIndex{Number: shard.ShardNumber(n), Count: shard.ShardCount(count)}},
		PlacementPolicy:  `{"Attached":0}`,
		Config:           `{}`,
		SchedulingPolicy: `"Active"`,
	}
}

func openTest(t *testing.T, fsys disk.FS, cfg DiskConfig) *DiskStore {
	t.Helper()
	s, err := OpenDisk(clock.NewReal(), fsys, testDir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fill inserts one unsharded tenant and increments its generation n times.
func fill(t *testing.T, s *DiskStore, n int) TenantShard {
	t.Helper()
	ctx := context.Background()
	row := testShard(1, 0, 0)
	if err := s.InsertTenantShards(ctx, []TenantShard{row}); err != nil {
		t.Fatal(err)
	}
	for range n {
		g, err := s.IncrementGeneration(ctx, row.ID, 3)
		if err != nil {
			t.Fatal(err)
		}
		row.Generation, row.GenerationNode = g, 3
	}
	return row
}

// logs lists the log files in the store's directory.
func logs(t *testing.T, fsys disk.FS) []string {
	t.Helper()
	ents, err := fsys.ReadDir(testDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), logPrefix) {
			out = append(out, testDir+"/"+e.Name())
		}
	}
	return out
}

// recordOffsets lists where each record of a log starts.
func recordOffsets(t *testing.T, fsys disk.FS, name string) []int {
	t.Helper()
	b, err := disk.ReadFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for off := 0; off < len(b); {
		offs = append(offs, off)
		n := int(b[off]) | int(b[off+1])<<8 | int(b[off+2])<<16 | int(b[off+3])<<24
		off += frameHeaderBytes + n
	}
	return offs
}

func wantGeneration(t *testing.T, s *DiskStore, row TenantShard) {
	t.Helper()
	got, err := s.ListTenantShards(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []TenantShard{row}) {
		t.Fatalf("state = %+v, want %+v", got, row)
	}
}

// TestCorruptionInTheMiddle flips a byte in a record's header and in a
// record's payload with records after them: opening must fail with
// ErrCorrupt, never drop the records that follow.
func TestCorruptionInTheMiddle(t *testing.T) {
	for _, where := range []struct {
		name string
		at   func(off int) int64
	}{
		{"header length", func(off int) int64 { return int64(off) }},
		{"header checksum", func(off int) int64 { return int64(off + 9) }},
		{"payload", func(off int) int64 { return int64(off + frameHeaderBytes + 3) }},
	} {
		t.Run(where.name, func(t *testing.T) {
			sfs := simdisk.New(simdisk.Options{})
			s := openTest(t, sfs, DiskConfig{})
			fill(t, s, 5)
			must(t, s.Close())
			name := logs(t, sfs)[0]
			offs := recordOffsets(t, sfs, name)
			must(t, sfs.Corrupt(name, where.at(offs[2])))
			_, err := OpenDisk(clock.NewReal(), sfs, testDir, DiskConfig{})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open with a damaged record in the middle: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestDamagedLastRecord documents the one loss a checksum cannot tell from
// a crash: a damaged last record is taken for a torn tail and cut off.
func TestDamagedLastRecord(t *testing.T) {
	sfs := simdisk.New(simdisk.Options{})
	s := openTest(t, sfs, DiskConfig{})
	row := fill(t, s, 5)
	must(t, s.Close())
	name := logs(t, sfs)[0]
	offs := recordOffsets(t, sfs, name)
	must(t, sfs.Corrupt(name, int64(offs[len(offs)-1]+frameHeaderBytes+3)))
	s = openTest(t, sfs, DiskConfig{})
	defer s.Close()
	row.Generation--
	wantGeneration(t, s, row)
}

// TestTornTails appends what a crash can leave after the last record and
// checks that opening cuts it off, keeps every record, and that records
// appended after the cut survive the next reopen.
func TestTornTails(t *testing.T) {
	frame := encodeFrame(nil, []byte(`{"seq":99}`))
	for _, tail := range []struct {
		name  string
		bytes []byte
	}{
		{"partial header", frame[:7]},
		{"header only", frame[:frameHeaderBytes]},
		{"partial payload", frame[:len(frame)-2]},
		{"zeros", make([]byte, 700)},
		{"whole record with a bad payload", append(slices.Clone(frame[:len(frame)-1]), frame[len(frame)-1]^1)},
	} {
		t.Run(tail.name, func(t *testing.T) {
			sfs := simdisk.New(simdisk.Options{})
			s := openTest(t, sfs, DiskConfig{})
			row := fill(t, s, 3)
			must(t, s.Close())
			name := logs(t, sfs)[0]
			f, err := sfs.OpenRW(name)
			must(t, err)
			_, err = f.Write(tail.bytes)
			must(t, err)
			must(t, f.Sync())
			must(t, f.Close())

			s = openTest(t, sfs, DiskConfig{})
			wantGeneration(t, s, row)
			g, err := s.IncrementGeneration(context.Background(), row.ID, 4)
			must(t, err)
			row.Generation, row.GenerationNode = g, 4
			must(t, s.Close())
			s = openTest(t, sfs, DiskConfig{})
			defer s.Close()
			wantGeneration(t, s, row)
		})
	}
}

func TestCorruptSnapshot(t *testing.T) {
	sfs := simdisk.New(simdisk.Options{})
	s := openTest(t, sfs, DiskConfig{MaxLogBytes: 1})
	fill(t, s, 3)
	must(t, s.Close())
	must(t, sfs.Corrupt(testDir+"/"+snapshotName, int64(snapshotHeaderBytes+5)))
	if _, err := OpenDisk(clock.NewReal(), sfs, testDir, DiskConfig{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a damaged snapshot: %v, want ErrCorrupt", err)
	}
}

// TestMissingSnapshot removes the snapshot a log continues: the gap is
// corruption, not an empty store.
func TestMissingSnapshot(t *testing.T) {
	sfs := simdisk.New(simdisk.Options{})
	s := openTest(t, sfs, DiskConfig{MaxLogBytes: 1})
	fill(t, s, 3)
	must(t, s.Close())
	must(t, sfs.Remove(testDir+"/"+snapshotName))
	if _, err := OpenDisk(clock.NewReal(), sfs, testDir, DiskConfig{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open without the snapshot the log continues: %v, want ErrCorrupt", err)
	}
}

func TestUnexpectedEntry(t *testing.T) {
	sfs := simdisk.New(simdisk.Options{})
	s := openTest(t, sfs, DiskConfig{})
	must(t, s.Close())
	must(t, disk.WriteFileAtomic(sfs, testDir+"/notes", []byte("x")))
	if _, err := OpenDisk(clock.NewReal(), sfs, testDir, DiskConfig{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with an unexpected file: %v, want ErrCorrupt", err)
	}
}

// TestLogBounded checks that the log never grows past MaxLogBytes plus one
// record, and that compaction leaves one snapshot and one log.
func TestLogBounded(t *testing.T) {
	const limit = 4096
	sfs := simdisk.New(simdisk.Options{})
	s := openTest(t, sfs, DiskConfig{MaxLogBytes: limit})
	ctx := context.Background()
	row := testShard(1, 0, 0)
	must(t, s.InsertTenantShards(ctx, []TenantShard{row}))
	largest := int64(0)
	for i := range 2000 {
		_, err := s.IncrementGeneration(ctx, row.ID, NodeID(i%7+1))
		must(t, err)
		largest = max(largest, s.Stats().LogBytes)
	}
	st := s.Stats()
	if largest >= limit || st.Compactions < 10 {
		t.Fatalf("largest log %d bytes (limit %d), %d compactions", largest, limit, st.Compactions)
	}
	ents, err := sfs.ReadDir(testDir)
	must(t, err)
	if len(ents) != 2 {
		t.Fatalf("directory holds %d entries after compactions, want a snapshot and a log", len(ents))
	}
	must(t, s.Close())
	s = openTest(t, sfs, DiskConfig{MaxLogBytes: limit})
	defer s.Close()
	g, _, err := s.Generation(ctx, row.ID)
	must(t, err)
	if g != 2000 {
		t.Fatalf("generation after reopen = %d, want 2000", g)
	}
}

func TestDiskConfig(t *testing.T) {
	if err := (DiskConfig{MaxLogBytes: -1}).Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "MaxLogBytes") {
		t.Fatalf("negative MaxLogBytes: %v", err)
	}
	if _, err := OpenDisk(clock.NewReal(), simdisk.New(simdisk.Options{}), testDir, DiskConfig{MaxLogBytes: -1}); !errors.Is(err, ErrConfig) {
		t.Fatalf("OpenDisk with a negative MaxLogBytes: %v", err)
	}
	if c := (DiskConfig{}).withDefaults(); c.MaxLogBytes != DefaultMaxLogBytes {
		t.Fatalf("default MaxLogBytes = %d", c.MaxLogBytes)
	}
}

// TestFailedWriteBreaksStore: after a failed sync every call fails with
// ErrFailed until a reopen, which recovers.
func TestFailedWriteBreaksStore(t *testing.T) {
	sfs := simdisk.New(simdisk.Options{})
	s := openTest(t, sfs, DiskConfig{})
	row := fill(t, s, 2)
	ctx := context.Background()
	sfs.SetFaults(rand.New(rand.NewPCG(1, 1)), simdisk.Faults{SyncEIO: 1})
	_, err := s.IncrementGeneration(ctx, row.ID, 3)
	if !errors.Is(err, ErrFailed) || !errors.Is(err, disk.ErrIO) {
		t.Fatalf("increment with a failing sync: %v, want ErrFailed wrapping the I/O error", err)
	}
	sfs.SetFaults(nil, simdisk.Faults{})
	if _, err := s.IncrementGeneration(ctx, row.ID, 3); !errors.Is(err, ErrFailed) {
		t.Fatalf("increment after a failure: %v, want ErrFailed", err)
	}
	if _, _, err := s.Generation(ctx, row.ID); !errors.Is(err, ErrFailed) {
		t.Fatalf("read after a failure: %v, want ErrFailed", err)
	}
	must(t, s.Close())
	s = openTest(t, sfs, DiskConfig{})
	defer s.Close()
	g, err := s.IncrementGeneration(ctx, row.ID, 3)
	must(t, err)
	if g <= row.Generation {
		t.Fatalf("generation after recovery = %d, not above %d", g, row.Generation)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// encodeLog encodes transactions as a log file.
func encodeLog(t testing.TB, txns []txn) []byte {
	var out []byte
	for i := range txns {
		rec, err := encodeTxn(&txns[i])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec...)
	}
	return out
}

// FuzzDecodeLog feeds arbitrary bytes to the log decoder. It must not
// panic; what it accepts must be a prefix that decodes again to the same
// transactions; a torn tail is never longer than the rest of the input;
// and a record appended after the valid prefix must decode too.
func FuzzDecodeLog(f *testing.F) {
	row := testShard(1, 0, 2)
	valid := encodeLog(f, []txn{
		{Seq: 1, PutShards: []TenantShard{row}},
		{Seq: 2, Gens: []genChange{{ID: row.ID, Generation: 1, Node: 2}}},
		{Seq: 3, DelNodes: []NodeID{4}, PutNodes: []Node{{ID: 5, SchedulingPolicy: "Active", Lifecycle: LifecycleActive}}},
	})
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(valid[:20])
	f.Add(append(slices.Clone(valid), make([]byte, 600)...))
	mid := slices.Clone(valid)
	mid[frameHeaderBytes+2] ^= 0x10
	f.Add(mid)
	f.Add(encodeFrame(nil, []byte(`{"seq":1,"bogus":true}`)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		txns, n, err := decodeLog(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error %v is not ErrCorrupt", err)
			}
			return
		}
		if n < 0 || n > len(b) {
			t.Fatalf("valid prefix %d of %d bytes", n, len(b))
		}
		again, n2, err := decodeLog(b[:n])
		if err != nil || n2 != n || len(again) != len(txns) {
			t.Fatalf("the valid prefix decodes to %d records, %d bytes, %v; first pass %d records, %d bytes", len(again), n2, err, len(txns), n)
		}
		for i := range txns {
			if fmt.Sprint(again[i]) != fmt.Sprint(txns[i]) {
				t.Fatalf("record %d decodes differently: %v vs %v", i, again[i], txns[i])
			}
		}
		next := encodeLog(t, []txn{{Seq: 77}})
		more, n3, err := decodeLog(append(slices.Clone(b[:n]), next...))
		if err != nil || n3 != n+len(next) || len(more) != len(txns)+1 || more[len(more)-1].Seq != 77 {
			t.Fatalf("a record appended after the valid prefix: %d records, %d bytes, %v", len(more), n3, err)
		}
	})
}

// TestDecodeLogTornTailOnly checks the decoder's seed cases directly.
func TestDecodeLogTornTailOnly(t *testing.T) {
	row := testShard(1, 0, 0)
	log := encodeLog(t, []txn{{Seq: 1, PutShards: []TenantShard{row}}, {Seq: 2}})
	txns, n, err := decodeLog(log)
	if err != nil || n != len(log) || len(txns) != 2 {
		t.Fatalf("whole log: %d records, %d of %d bytes, %v", len(txns), n, len(log), err)
	}
	for cut := 1; cut < len(log); cut++ {
		txns, n, err := decodeLog(log[:cut])
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if n > cut || len(txns) > 2 || !bytes.Equal(log[:n], encodeLog(t, []txn{{Seq: 1, PutShards: []TenantShard{row}}, {Seq: 2}}[:len(txns)])) {
			t.Fatalf("cut at %d: %d records, %d bytes", cut, len(txns), n)
		}
	}
}
