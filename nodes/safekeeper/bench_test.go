package safekeeper_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
)

// BenchmarkStoreAppend128K: one safekeeper's storage path, 128 KiB frames
// each written and fsynced (the cost every acknowledged append pays).
func BenchmarkStoreAppend128K(b *testing.B) {
	st, err := walstore.Create(disk.Dir(b.TempDir()), "tl", walstore.Control{TenantID: "t", TimelineID: "tl",
		SegmentBytes: 16 << 20, Acceptor: skproto.AcceptorState{StartLSN: 0x1000}})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	frame := skproto.AppendFrame(nil, make([]byte, 128<<10-skproto.FrameHeaderBytes))
	pos := lsn.LSN(0x1000)
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := st.Write(pos, frame); err != nil {
			b.Fatal(err)
		}
		if err := st.Sync(); err != nil {
			b.Fatal(err)
		}
		pos += lsn.LSN(len(frame))
	}
}

// BenchmarkCommitLatency3 measures commit latency through a walproposer
// and three in-process safekeepers on loopback gRPC, one 128-byte record at
// a time; p50 and p99 are reported as metrics.
func BenchmarkCommitLatency3(b *testing.B) {
	c := newClusterSeg(b, 3, 16<<20)
	w := c.proposer("bench")
	ctx := context.Background()
	rec := [][]byte{make([]byte, 120)}
	var lats []time.Duration
	for b.Loop() {
		t0 := time.Now()
		end, err := w.Append(ctx, rec)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.WaitCommitted(ctx, end); err != nil {
			b.Fatal(err)
		}
		lats = append(lats, time.Since(t0))
	}
	slices.Sort(lats)
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds()), "p99-us")
}

// BenchmarkThroughput3 pipelines 128 KiB batches to three safekeepers.
func BenchmarkThroughput3(b *testing.B) {
	c := newClusterSeg(b, 3, 16<<20)
	w := c.proposer("bench")
	ctx := context.Background()
	rec := [][]byte{make([]byte, 128<<10-skproto.FrameHeaderBytes)}
	b.SetBytes(128 << 10)
	var end lsn.LSN
	var err error
	i := 0
	for b.Loop() {
		if end, err = w.Append(ctx, rec); err != nil {
			b.Fatal(err)
		}
		if i++; i%32 == 0 {
			if err := w.WaitCommitted(ctx, end-16*(128<<10)); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := w.WaitCommitted(ctx, end); err != nil {
		b.Fatal(err)
	}
}
