package pageserver

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// ingestValues writes key values no walrec record produces (SLRU,
// metadata) into a shard's timeline and tells readers, as ingest would.
func (f *fixture) ingestValues(t *testing.T, idx shard.ShardIndex, at lsn.LSN, kvs ...walrec.KeyValue) {
	t.Helper()
	st := f.tls[f.target(idx)]
	if err := st.tl.IngestValues(at, kvs); err != nil {
		t.Fatalf("ingest values at %s: %v", at, err)
	}
	st.ingested.Advance(at)
}

func readLsn(at lsn.LSN) *pageapi.ReadLsn { return &pageapi.ReadLsn{RequestLsn: uint64(at)} }

func (f *fixture) dbSize(ctx context.Context, db uint32, at lsn.LSN) (uint64, error) {
	resp, err := net.CallProto[*pageapi.GetDbSizeResponse](ctx, f.conn, pageapi.PageService_GetDbSize_FullMethodName,
		&pageapi.GetDbSizeRequest{ReadLsn: readLsn(at), DbOid: db})
	if err != nil {
		return 0, err
	}
	return resp.NumBytes, nil
}

// TestGetDbSize: a database's size is the sum of its relations' forks, in
// every tablespace, at the LSN asked — dropped relations and other
// databases left out — from memory and from layer files alike.
func TestGetDbSize(t *testing.T) {
	runFixture(t, PageServiceConfig{WaitLSNTimeout: 5 * time.Second}, false, unsharded, func(f *fixture) {
		u := shard.ShardIndex{}
		main := keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}
		fsm := keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384, ForkNum: keys.ForkFSM}
		dropped := keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16390}
		otherSpc := keys.RelTag{SpcNode: 1700, DbNode: 5, RelNode: 16400}
		otherDb := keys.RelTag{SpcNode: 1663, DbNode: 7, RelNode: 16384}
		f.ingest(t, u, 0x10, walrec.RelSizeChange{Rel: main, NBlocks: 10})
		for blk := uint32(0); blk < 3; blk++ {
			f.ingest(t, u, 0x11+lsn.LSN(blk), walrec.FullPageImage{Rel: main, Blk: blk, Page: testPage(byte(blk))})
		}
		f.ingest(t, u, 0x20, walrec.RelSizeChange{Rel: fsm, NBlocks: 3})
		f.ingest(t, u, 0x21, walrec.FullPageImage{Rel: dropped, Blk: 0, Page: testPage(9)})
		f.ingest(t, u, 0x22, walrec.RelSizeChange{Rel: dropped, NBlocks: 2})
		f.ingest(t, u, 0x30, walrec.RelSizeChange{Rel: otherSpc, NBlocks: 4})
		f.ingest(t, u, 0x31, walrec.RelSizeChange{Rel: otherDb, NBlocks: 100})
		f.ingestValues(t, u, 0x32, walrec.KeyValue{Key: keys.RelDirKey(1663, 5), Value: walrec.Image([]byte("dir"))},
			walrec.KeyValue{Key: keys.RelMapKey(1663, 5), Value: walrec.Image([]byte("map"))})
		f.ingest(t, u, 0x40, walrec.RelDrop{Rel: dropped})
		f.ingest(t, u, 0x41, walrec.RelSizeChange{Rel: main, NBlocks: 12})
		ctx, cancel := f.ctx(u, "")
		defer cancel()
		const b = keys.BlockSize
		cases := []struct {
			db   uint32
			at   lsn.LSN
			want uint64
		}{
			{5, 0x10, 10 * b},
			{5, 0x20, 13 * b},
			{5, 0x22, 15 * b},
			{5, 0x30, 19 * b}, // another tablespace, same database
			{5, 0x40, 17 * b}, // dropped
			{5, 0x41, 19 * b},
			{7, 0x41, 100 * b},
			{6, 0x41, 0},
			{0, 0x41, 0},
		}
		check := func(phase string) {
			for _, c := range cases {
				if got, err := f.dbSize(ctx, c.db, c.at); err != nil || got != c.want {
					t.Errorf("%s: db %d at %s: %d, %v; want %d", phase, c.db, c.at, got, err, c.want)
				}
			}
		}
		check("in memory")
		if err := f.tls[f.target(u)].tl.Flush(); err != nil {
			t.Fatal(err)
		}
		check("flushed")

		// Waits for ingest like a page read.
		start := f.clk.Mono()
		f.clk.Go(context.Background(), "late ingest", func(context.Context) {
			_ = clock.Sleep(context.Background(), f.clk, time.Second)
			f.ingest(t, u, 0x50, walrec.RelSizeChange{Rel: otherDb, NBlocks: 1})
		})
		if got, err := f.dbSize(ctx, 7, 0x50); err != nil || got != b || f.clk.Mono()-start < time.Second {
			t.Errorf("db 7 at 0x50 (ingested a second later): %d, %v after %v", got, err, f.clk.Mono()-start)
		}
		// Refusals.
		if _, err := f.dbSize(ctx, 5, 0); net.CodeOf(err) != net.InvalidArgument {
			t.Errorf("request_lsn 0: %v, want InvalidArgument", err)
		}
		if _, err := f.tls[f.target(u)].tl.GCAt(0x40); err != nil {
			t.Fatal(err)
		}
		if _, err := f.dbSize(ctx, 5, 0x30); net.CodeOf(err) != net.FailedPrecondition || !strings.Contains(err.Error(), "GC cutoff") {
			t.Errorf("below the GC cutoff: %v, want FailedPrecondition", err)
		}
	})
}

func (f *fixture) slru(ctx context.Context, kind, segno uint32, at lsn.LSN) ([]byte, error) {
	resp, err := net.CallProto[*pageapi.GetSlruSegmentResponse](ctx, f.conn, pageapi.PageService_GetSlruSegment_FullMethodName,
		&pageapi.GetSlruSegmentRequest{ReadLsn: readLsn(at), Kind: kind, Segno: segno})
	if err != nil {
		return nil, err
	}
	return resp.Segment, nil
}

func slruKV(kind, segno, blk uint32, fill byte) walrec.KeyValue {
	return walrec.KeyValue{Key: keys.SlruBlockKey(kind, segno, blk), Value: walrec.Image(testPage(fill))}
}

func slruSize(kind, segno, n uint32) walrec.KeyValue {
	return walrec.KeyValue{Key: keys.SlruSizeKey(kind, segno), Value: walrec.SizeImage(n)}
}

// TestGetSlruSegment: a segment is its blocks below its size, in order, at
// the LSN asked; an absent one is NotFound; a bad kind InvalidArgument; an
// inconsistent one (a block missing, a size above 32) Internal.
func TestGetSlruSegment(t *testing.T) {
	runFixture(t, PageServiceConfig{}, false, unsharded, func(f *fixture) {
		u := shard.ShardIndex{}
		f.ingestValues(t, u, 0x10, slruKV(keys.SlruClog, 0, 0, 1), slruKV(keys.SlruClog, 0, 1, 2), slruKV(keys.SlruClog, 0, 2, 3), slruSize(keys.SlruClog, 0, 3))
		f.ingestValues(t, u, 0x20, slruKV(keys.SlruClog, 0, 1, 4), slruKV(keys.SlruMultiXactOffset, 0, 0, 5), slruSize(keys.SlruMultiXactOffset, 0, 1))
		f.ingestValues(t, u, 0x30, slruSize(keys.SlruClog, 0, 2))                                                        // truncated to two blocks
		f.ingestValues(t, u, 0x40, slruKV(keys.SlruClog, 1, 0, 6), slruSize(keys.SlruClog, 1, 2))                        // block 1 missing
		f.ingestValues(t, u, 0x41, slruKV(keys.SlruMultiXactMember, 3, 0, 7), slruSize(keys.SlruMultiXactMember, 3, 40)) // too big
		ctx, cancel := f.ctx(u, "")
		defer cancel()
		pages := func(fills ...byte) []byte {
			var out []byte
			for _, b := range fills {
				out = append(out, testPage(b)...)
			}
			return out
		}
		for _, c := range []struct {
			kind, segno uint32
			at          lsn.LSN
			want        []byte
		}{
			{keys.SlruClog, 0, 0x10, pages(1, 2, 3)},
			{keys.SlruClog, 0, 0x20, pages(1, 4, 3)},
			{keys.SlruClog, 0, 0x30, pages(1, 4)},
			{keys.SlruMultiXactOffset, 0, 0x30, pages(5)},
		} {
			if got, err := f.slru(ctx, c.kind, c.segno, c.at); err != nil || !bytes.Equal(got, c.want) {
				t.Errorf("kind %d seg %d at %s: %d bytes, %v; want %d bytes", c.kind, c.segno, c.at, len(got), err, len(c.want))
			}
		}
		for _, c := range []struct {
			name        string
			kind, segno uint32
			at          lsn.LSN
			want        net.Code
		}{
			{"absent segment", keys.SlruClog, 5, 0x41, net.NotFound},
			{"before it was written", keys.SlruMultiXactOffset, 0, 0x10, net.NotFound},
			{"bad kind", 3, 0, 0x41, net.InvalidArgument},
			{"request_lsn 0", keys.SlruClog, 0, 0, net.InvalidArgument},
			{"block missing", keys.SlruClog, 1, 0x41, net.Internal},
			{"size above 32", keys.SlruMultiXactMember, 3, 0x41, net.Internal},
		} {
			if _, err := f.slru(ctx, c.kind, c.segno, c.at); net.CodeOf(err) != c.want {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
		}
	})
}

// Metadata requests are for shard 0: another shard answers InvalidArgument.
func TestMetadataRequestsShard0Only(t *testing.T) {
	idents := []shard.ShardIdentity{{Number: 0, Count: 2, StripeSize: 8}, {Number: 1, Count: 2, StripeSize: 8}}
	runFixture(t, PageServiceConfig{}, false, idents, func(f *fixture) {
		for _, id := range idents {
			f.ingest(t, id.Index(), 0x10, walrec.RelSizeChange{Rel: testRel, NBlocks: 5})
			f.ingestValues(t, id.Index(), 0x11, slruKV(keys.SlruClog, 0, 0, 1), slruSize(keys.SlruClog, 0, 1))
		}
		for _, id := range idents {
			ctx, cancel := f.ctx(id.Index(), "")
			want := net.OK
			if id.Number != 0 {
				want = net.InvalidArgument
			}
			if _, err := f.dbSize(ctx, testRel.DbNode, 0x11); net.CodeOf(err) != want {
				t.Errorf("GetDbSize on shard %s: %v, want %v", id.Index(), err, want)
			}
			if _, err := f.slru(ctx, keys.SlruClog, 0, 0x11); net.CodeOf(err) != want {
				t.Errorf("GetSlruSegment on shard %s: %v, want %v", id.Index(), err, want)
			}
			if _, _, err := f.baseBackup(ctx, &pageapi.GetBaseBackupRequest{Lsn: 0x11, Compression: pageapi.BaseBackupCompression_BASE_BACKUP_COMPRESSION_NONE}); net.CodeOf(err) != want {
				t.Errorf("GetBaseBackup on shard %s: %v, want %v", id.Index(), err, want)
			}
			if id.Number == 0 {
				// Shard 0 of a sharded tenant lacks the other shards' blocks.
				if _, _, err := f.baseBackup(ctx, &pageapi.GetBaseBackupRequest{Lsn: 0x11, Full: true, Compression: pageapi.BaseBackupCompression_BASE_BACKUP_COMPRESSION_NONE}); net.CodeOf(err) != net.InvalidArgument {
					t.Errorf("full base backup of a sharded tenant: %v, want InvalidArgument", err)
				}
			}
			cancel()
		}
	})
}

// baseBackup runs GetBaseBackup and returns the chunks received.
func (f *fixture) baseBackup(ctx context.Context, req *pageapi.GetBaseBackupRequest) ([][]byte, []byte, error) {
	s, err := net.StreamProto[*pageapi.GetBaseBackupRequest, *pageapi.GetBaseBackupResponseChunk](ctx, f.conn, pageapi.PageService_GetBaseBackup_FullMethodName)
	if err != nil {
		return nil, nil, err
	}
	if err := s.Send(req); err != nil && err != io.EOF {
		return nil, nil, err
	}
	_ = s.CloseSend()
	var chunks [][]byte
	var all []byte
	for {
		c, err := s.Recv()
		if err == io.EOF {
			return chunks, all, nil
		}
		if err != nil {
			return chunks, all, err
		}
		chunks = append(chunks, c.Chunk)
		all = append(all, c.Chunk...)
	}
}

type backupKV struct {
	k keys.Key
	v []byte
}

func decodeBackup(t *testing.T, gz bool, b []byte) (pageapi.BaseBackupManifest, []backupKV) {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	}
	var out []backupKV
	m, err := pageapi.ReadBaseBackup(r, func(k keys.Key, v []byte) error {
		out = append(out, backupKV{k, bytes.Clone(v)})
		return nil
	})
	if err != nil {
		t.Fatalf("read base backup: %v", err)
	}
	return m, out
}

// TestGetBaseBackup: the archive holds every non-block key with a value at
// the LSN (relation sizes, directories, control file, checkpoint, SLRU),
// with its value, and — full — the relation blocks too; never a dropped
// relation's size or a key written after the LSN. NONE and GZIP carry the
// same archive in chunks of 256 KiB; lsn 0 is the latest; the request is
// validated as the page API says.
func TestGetBaseBackup(t *testing.T) {
	runFixture(t, PageServiceConfig{WaitLSNTimeout: 5 * time.Second}, false, unsharded, func(f *fixture) {
		u := shard.ShardIndex{}
		dropped := keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16390}
		f.ingest(t, u, 0x10, walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(1)})
		f.ingest(t, u, 0x11, walrec.FullPageImage{Rel: testRel, Blk: 1, Page: testPage(2)})
		f.ingest(t, u, 0x12, walrec.RelSizeChange{Rel: testRel, NBlocks: 2})
		f.ingest(t, u, 0x13, walrec.RelSizeChange{Rel: dropped, NBlocks: 1})
		// Two clog segments of 20 blocks: 320 KiB of SLRU, over one chunk.
		var slru []walrec.KeyValue
		for seg := uint32(0); seg < 2; seg++ {
			for blk := uint32(0); blk < 20; blk++ {
				slru = append(slru, slruKV(keys.SlruClog, seg, blk, byte(seg*20+blk)))
			}
			slru = append(slru, slruSize(keys.SlruClog, seg, 20))
		}
		meta := []walrec.KeyValue{
			{Key: keys.DbDirKey(), Value: walrec.Image([]byte("dbdir"))},
			{Key: keys.RelMapKey(1663, 5), Value: walrec.Image([]byte("relmap"))},
			{Key: keys.RelDirKey(1663, 5), Value: walrec.Image([]byte("reldir"))},
			{Key: keys.ControlFileKey(), Value: walrec.Image([]byte("control"))},
			{Key: keys.CheckpointKey(), Value: walrec.Image([]byte("checkpoint"))},
		}
		f.ingestValues(t, u, 0x20, append(slru, meta...)...)
		f.ingest(t, u, 0x30, walrec.RelDrop{Rel: dropped})
		f.ingestValues(t, u, 0x40, walrec.KeyValue{Key: keys.CheckpointKey(), Value: walrec.Image([]byte("checkpoint 2"))})
		ctx, cancel := f.ctx(u, "")
		defer cancel()

		want := map[keys.Key][]byte{keys.RelSizeKey(testRel): walrec.SizeImage(2).Image}
		for _, kv := range append(slru, meta...) {
			want[kv.Key] = kv.Value.Image
		}
		wantKeys := slices.SortedFunc(func(yield func(keys.Key) bool) {
			for k := range want {
				if !yield(k) {
					return
				}
			}
		}, keys.Key.Compare)
		none := pageapi.BaseBackupCompression_BASE_BACKUP_COMPRESSION_NONE
		gzipped := pageapi.BaseBackupCompression_BASE_BACKUP_COMPRESSION_GZIP
		var plain []byte
		for _, comp := range []pageapi.BaseBackupCompression{none, gzipped} {
			chunks, all, err := f.baseBackup(ctx, &pageapi.GetBaseBackupRequest{Lsn: 0x30, Compression: comp})
			if err != nil {
				t.Fatalf("%v: %v", comp, err)
			}
			for i, c := range chunks {
				if i < len(chunks)-1 && len(c) != pageapi.BaseBackupChunkBytes || len(c) == 0 || len(c) > pageapi.BaseBackupChunkBytes {
					t.Errorf("%v: chunk %d of %d holds %d bytes", comp, i, len(chunks), len(c))
				}
			}
			if comp == none {
				plain = all
				if len(chunks) < 2 {
					t.Errorf("%d chunks for %d bytes", len(chunks), len(all))
				}
			}
			m, got := decodeBackup(t, comp == gzipped, all)
			if m.LSN != 0x30 || m.Full || m.TimelineID != timelineA.String() || m.TenantShardID != f.target(u).Shard.String() {
				t.Errorf("%v: manifest %+v", comp, m)
			}
			if len(got) != len(wantKeys) {
				t.Fatalf("%v: %d keys, want %d", comp, len(got), len(wantKeys))
			}
			for i, kv := range got {
				if kv.k != wantKeys[i] || !bytes.Equal(kv.v, want[kv.k]) {
					t.Fatalf("%v: entry %d: %s (%d bytes), want %s", comp, i, kv.k, len(kv.v), wantKeys[i])
				}
			}
		}
		// Full: the relation blocks as well; latest LSN with lsn 0.
		_, all, err := f.baseBackup(ctx, &pageapi.GetBaseBackupRequest{Lsn: 0, Full: true, Compression: none})
		if err != nil {
			t.Fatal(err)
		}
		m, got := decodeBackup(t, false, all)
		if m.LSN != 0x40 || !m.Full || len(got) != len(wantKeys)+2 {
			t.Fatalf("full at latest: manifest %+v, %d keys", m, len(got))
		}
		for _, kv := range got {
			if kv.k == keys.RelBlockKey(testRel, 1) && !bytes.Equal(kv.v, testPage(2)) {
				t.Errorf("block 1 in the full backup differs")
			}
			if kv.k == keys.CheckpointKey() && string(kv.v) != "checkpoint 2" {
				t.Errorf("checkpoint at the latest LSN: %q", kv.v)
			}
		}
		// The same request gives the same bytes.
		if _, again, err := f.baseBackup(ctx, &pageapi.GetBaseBackupRequest{Lsn: 0x30, Compression: none}); err != nil || !bytes.Equal(again, plain) {
			t.Errorf("second backup at 0x30 differs (%v)", err)
		}
		// Waits for ingest.
		start := f.clk.Mono()
		f.clk.Go(context.Background(), "late ingest", func(context.Context) {
			_ = clock.Sleep(context.Background(), f.clk, time.Second)
			f.ingest(t, u, 0x50, walrec.RelSizeChange{Rel: testRel, NBlocks: 7})
		})
		_, all, err = f.baseBackup(ctx, &pageapi.GetBaseBackupRequest{Lsn: 0x50, Compression: none})
		if err != nil || f.clk.Mono()-start < time.Second {
			t.Fatalf("backup at 0x50 (ingested a second later): %v after %v", err, f.clk.Mono()-start)
		}
		// Sorted: the database directory, relation map and directory of
		// 1663/5 (relnode 0), then the relation's size.
		if _, got = decodeBackup(t, false, all); got[0].k != keys.DbDirKey() || got[3].k != keys.RelSizeKey(testRel) || !bytes.Equal(got[3].v, walrec.SizeImage(7).Image) {
			t.Errorf("backup at 0x50: %v=%v, %v=%v", got[0].k, got[0].v, got[3].k, got[3].v)
		}
		// Refusals.
		if _, err := f.tls[f.target(u)].tl.GCAt(0x40); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			req  *pageapi.GetBaseBackupRequest
			want net.Code
		}{
			{"compression UNKNOWN", &pageapi.GetBaseBackupRequest{Lsn: 0x40}, net.InvalidArgument},
			{"compression 7", &pageapi.GetBaseBackupRequest{Lsn: 0x40, Compression: 7}, net.InvalidArgument},
			{"below the GC cutoff", &pageapi.GetBaseBackupRequest{Lsn: 0x30, Compression: none}, net.FailedPrecondition},
			{"at the cutoff", &pageapi.GetBaseBackupRequest{Lsn: 0x40, Compression: gzipped}, net.OK},
		} {
			if _, _, err := f.baseBackup(ctx, c.req); net.CodeOf(err) != c.want {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
		}
	})
}
