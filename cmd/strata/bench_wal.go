package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
)

// The bounds of `strata bench wal`'s flags. A batch or record is one WAL
// frame: a header plus at least one payload byte, and at most the largest
// payload a frame may carry.
const (
	minBenchRecordBytes = skproto.FrameHeaderBytes + 1
	maxBenchRecordBytes = skproto.FrameHeaderBytes + skproto.MaxFramePayloadBytes
	// maxBenchDuration bounds one measurement (there are four).
	maxBenchDuration = time.Hour
)

// errBenchFlag reports a `strata bench` flag value out of its bounds.
var errBenchFlag = errors.New("bench: bad flag")

// benchWALFlags are `strata bench wal`'s flags.
type benchWALFlags struct {
	dir      string
	duration time.Duration
	batch    int
	record   int
	json     bool
}

// validate rejects values the benchmark cannot run with, naming the flag.
func (f benchWALFlags) validate() error {
	if f.duration <= 0 || f.duration > maxBenchDuration {
		return fmt.Errorf("%w: --duration %v not in (0, %v]", errBenchFlag, f.duration, maxBenchDuration)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"--batch", f.batch}, {"--record", f.record}} {
		if v.n < minBenchRecordBytes || v.n > maxBenchRecordBytes {
			return fmt.Errorf("%w: %s %d not in [%d, %d] bytes (frame header %d bytes plus 1..%d payload bytes)",
				errBenchFlag, v.name, v.n, minBenchRecordBytes, maxBenchRecordBytes, skproto.FrameHeaderBytes, skproto.MaxFramePayloadBytes)
		}
	}
	if f.dir != "" {
		fi, err := os.Stat(f.dir)
		if err != nil {
			return fmt.Errorf("%w: --dir %s: %w (it must exist; bench wal creates its files in a temporary directory inside it)", errBenchFlag, f.dir, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: --dir %s is not a directory", errBenchFlag, f.dir)
		}
	}
	return nil
}

// benchSubcommands are the targets of `strata bench`, registered by the
// bench_*.go files' init functions.
var benchSubcommands []func() *cobra.Command

func init() {
	register(newBenchCmd)
	benchSubcommands = append(benchSubcommands, newBenchWALCmd)
}

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Run benchmarks against real processes' code on this machine"}
	for _, f := range benchSubcommands {
		cmd.AddCommand(f())
	}
	return cmd
}

// walBenchResult is the JSON output of `strata bench wal --json`.
type walBenchResult struct {
	Name       string  `json:"name"`
	Seconds    float64 `json:"seconds"`
	Bytes      int64   `json:"bytes"`
	Ops        int     `json:"ops"`
	MiBPerSec  float64 `json:"mib_per_sec"`
	P50Millis  float64 `json:"p50_ms,omitempty"`
	P99Millis  float64 `json:"p99_ms,omitempty"`
	BatchBytes int     `json:"batch_bytes"`
}

func (r walBenchResult) String() string {
	s := fmt.Sprintf("%-28s %8.1f MiB/s %7d ops in %.2fs (batch %d B)", r.Name, r.MiBPerSec, r.Ops, r.Seconds, r.BatchBytes)
	if r.P50Millis > 0 {
		s += fmt.Sprintf("  p50 %.3f ms  p99 %.3f ms", r.P50Millis, r.P99Millis)
	}
	return s
}

func newBenchWALCmd() *cobra.Command {
	var f benchWALFlags
	cmd := &cobra.Command{
		Use:   "wal",
		Short: "WAL service: fsynced append throughput on one safekeeper, commit latency and throughput on three",
		Long: `wal measures, on this machine's disk and loopback network:
  store-append        walstore writes of --batch bytes, each followed by fsync
  1sk-append          a walproposer appending --batch-byte batches to one safekeeper over gRPC
  3sk-commit-latency  one --record-byte record appended and waited for at a time, 3 safekeepers
  3sk-throughput      --batch-byte batches pipelined to 3 safekeepers

Its files go to a temporary directory (inside --dir if given, which must
exist), removed when the benchmark ends.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			// Always a fresh directory of our own, so that removing it
			// afterwards removes only what the benchmark wrote.
			dir, err := os.MkdirTemp(f.dir, "strata-bench-wal-")
			if err != nil {
				return fmt.Errorf("bench wal: %w", err)
			}
			defer os.RemoveAll(dir)
			out := cmd.OutOrStdout()
			emit := func(r walBenchResult) {
				if f.json {
					b, _ := json.Marshal(r)
					fmt.Fprintln(out, string(b))
				} else {
					fmt.Fprintln(out, r)
				}
			}
			r, err := benchStoreAppend(cmd.Context(), dir, f.batch, f.duration)
			if err != nil {
				return err
			}
			emit(r)
			for _, tc := range []struct {
				name    string
				sks     int
				rec     int
				latency bool
			}{
				{"1sk-append", 1, f.batch, false},
				{"3sk-commit-latency", 3, f.record, true},
				{"3sk-throughput", 3, f.batch, false},
			} {
				r, err := benchCluster(cmd.Context(), dir, tc.name, tc.sks, tc.rec, tc.latency, f.duration)
				if err != nil {
					return err
				}
				emit(r)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.dir, "dir", "", "existing directory on the disk to measure; the WAL files go to a temporary directory inside it, removed afterwards (default: the system's temporary directory)")
	cmd.Flags().DurationVar(&f.duration, "duration", 2*time.Second, fmt.Sprintf("time per measurement, (0, %v]", maxBenchDuration))
	cmd.Flags().IntVar(&f.batch, "batch", 128<<10, fmt.Sprintf("bytes per append batch (one frame), %d..%d", minBenchRecordBytes, maxBenchRecordBytes))
	cmd.Flags().IntVar(&f.record, "record", 128, fmt.Sprintf("record size (one frame) for the latency measurement, %d..%d", minBenchRecordBytes, maxBenchRecordBytes))
	cmd.Flags().BoolVar(&f.json, "json", false, "one JSON object per measurement")
	return cmd
}

// benchStoreAppend writes batch-byte frames and fsyncs after each.
func benchStoreAppend(ctx context.Context, dir string, batch int, d time.Duration) (walBenchResult, error) {
	fsys := disk.Dir(dir)
	st, err := walstore.Create(fsys, "store-bench", walstore.Control{TenantID: "t", TimelineID: "tl", SegmentBytes: 16 << 20,
		Acceptor: skproto.AcceptorState{StartLSN: 0x1000}})
	if err != nil {
		return walBenchResult{}, err
	}
	defer st.Close()
	frame := skproto.AppendFrame(nil, make([]byte, batch-skproto.FrameHeaderBytes))
	pos := lsn.LSN(0x1000)
	start := time.Now()
	var ops int
	for time.Since(start) < d {
		if err := ctx.Err(); err != nil {
			return walBenchResult{}, err
		}
		if err := st.Write(pos, frame); err != nil {
			return walBenchResult{}, err
		}
		if err := st.Sync(); err != nil {
			return walBenchResult{}, err
		}
		pos += lsn.LSN(len(frame))
		ops++
	}
	secs := time.Since(start).Seconds()
	total := int64(ops) * int64(len(frame))
	return walBenchResult{Name: "store-append", Seconds: secs, Bytes: total, Ops: ops,
		MiBPerSec: float64(total) / (1 << 20) / secs, BatchBytes: len(frame)}, nil
}

func benchEnv(id string, fsys disk.FS) node.Env {
	return node.Env{ID: id, Clock: clock.NewReal(), Net: grpcx.New(grpcx.Options{}), Disk: fsys,
		Rand: rand.New(rand.NewPCG(1, 2)), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}
}

// benchCluster runs n in-process safekeepers on loopback gRPC with their
// WAL on dir, and a walproposer writing rec-byte records.
func benchCluster(ctx context.Context, dir, name string, n, rec int, latency bool, d time.Duration) (walBenchResult, error) {
	var addrs []string
	for i := 1; i <= n; i++ {
		sub := fmt.Sprintf("%s/sk-%d", name, i)
		if err := os.MkdirAll(dir+"/"+sub, 0o755); err != nil {
			return walBenchResult{}, err
		}
		sk, err := safekeeper.New(benchEnv(sub, disk.Dir(dir+"/"+sub)), safekeeper.Config{NodeID: fmt.Sprintf("sk-%d", i),
			ListenAddr: "127.0.0.1:0", SegmentBytes: 64 << 20})
		if err != nil {
			return walBenchResult{}, err
		}
		if err := sk.Start(context.Background()); err != nil {
			return walBenchResult{}, err
		}
		defer sk.Stop(context.Background())
		addrs = append(addrs, sk.Addr())
	}
	payload := rec - skproto.FrameHeaderBytes
	w, err := walproposer.New(benchEnv("compute", nil), walproposer.Config{ID: "bench", TenantID: "be9c4", TimelineID: "be9c5",
		Safekeepers: addrs, MaxAppendBytes: max(rec, 128<<10), MaxInflightBytes: 16 << 20, MaxBufferBytes: 256 << 20})
	if err != nil {
		return walBenchResult{}, err
	}
	w.Start(context.Background())
	defer w.Stop()
	data := [][]byte{make([]byte, payload)}
	var lats []time.Duration
	start := time.Now()
	var ops int
	var end lsn.LSN
	for time.Since(start) < d {
		t0 := time.Now()
		if end, err = w.Append(ctx, data); err != nil {
			return walBenchResult{}, err
		}
		if latency {
			if err := w.WaitCommitted(ctx, end); err != nil {
				return walBenchResult{}, err
			}
			lats = append(lats, time.Since(t0))
		} else if ops%32 == 31 {
			// Keep the proposer's buffer bounded: wait for the batch
			// 32 appends back to commit.
			if err := w.WaitCommitted(ctx, end-lsn.LSN(16*rec)); err != nil {
				return walBenchResult{}, err
			}
		}
		ops++
	}
	if err := w.WaitCommitted(ctx, end); err != nil {
		return walBenchResult{}, err
	}
	secs := time.Since(start).Seconds()
	total := int64(ops) * int64(rec)
	r := walBenchResult{Name: name, Seconds: secs, Bytes: total, Ops: ops, MiBPerSec: float64(total) / (1 << 20) / secs, BatchBytes: rec}
	if len(lats) > 0 {
		slices.Sort(lats)
		r.P50Millis = float64(lats[len(lats)/2]) / float64(time.Millisecond)
		r.P99Millis = float64(lats[len(lats)*99/100]) / float64(time.Millisecond)
	}
	return r, nil
}
