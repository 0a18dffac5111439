package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/stratadb/strata/cmd/internal/proctest"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/disk/objstore/s3test"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/nodes/compute/walproposer"
)

const fakeBucket = "strata-wal"

// s3Target is an S3 service the daemons under test offload to, with a
// client on its raw bucket (no prefix), so tests see the exact keys the
// daemons wrote.
type s3Target struct {
	endpoint, bucket     string
	accessKey, secretKey string
	raw                  *objstore.S3
}

// newFakeS3 serves an in-memory S3 (gofakes3) with one bucket on loopback,
// in the test process.
func newFakeS3(t *testing.T) s3Target {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(fakeBucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	tg := s3Target{endpoint: srv.URL, bucket: fakeBucket, accessKey: "test-ak", secretKey: "test-sk"}
	raw, err := objstore.NewS3(context.Background(), objstore.S3Config{Endpoint: srv.URL, Bucket: fakeBucket,
		PathStyle: true, AccessKey: tg.accessKey, SecretKey: tg.secretKey, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	tg.raw = raw
	return tg
}

// newRealS3 starts a real S3 server in another process (versitygw, see
// disk/objstore/s3test) with a fresh bucket. Without the server the test
// is skipped, or fails under CI.
func newRealS3(t *testing.T) s3Target {
	t.Helper()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	return s3Target{endpoint: srv.Endpoint, bucket: bucket, accessKey: s3test.AccessKey, secretKey: s3test.SecretKey,
		raw: srv.Store(t, bucket, "")}
}

// s3Targets are the services every S3 test runs against.
var s3Targets = []struct {
	name  string
	start func(t *testing.T) s3Target
}{
	{"gofakes3", newFakeS3},
	{"versitygw", newRealS3},
}

// s3Flags points a safekeeper at tg's bucket (or at bucket, if not empty).
// Credentials travel in the environment, the way the docs recommend.
func s3Flags(tg s3Target, bucket, prefix string) (args, env []string) {
	if bucket == "" {
		bucket = tg.bucket
	}
	return []string{"-s3-bucket", bucket, "-s3-endpoint", tg.endpoint, "-s3-path-style", "-s3-prefix", prefix, "-s3-max-attempts", "2"},
		[]string{"STRATA_SAFEKEEPER_S3_ACCESS_KEY=" + tg.accessKey, "STRATA_SAFEKEEPER_S3_SECRET_KEY=" + tg.secretKey}
}

// TestS3Offload runs three real safekeeper processes offloading to S3 —
// an in-process fake, then a real S3 server in another process — commits
// WAL across several small segments through a walproposer, and checks that
// every sealed, committed segment appears in the bucket under
// <prefix>/wal/<tenant>/<timeline>/<segno %016X> with exactly the committed
// WAL's bytes (zeros below the timeline's start), and that nothing else was
// written under the prefix.
func TestS3Offload(t *testing.T) {
	for _, target := range s3Targets {
		t.Run(target.name, func(t *testing.T) { testS3Offload(t, target.start(t)) })
	}
}

func testS3Offload(t *testing.T, tg s3Target) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw := tg.raw
	bin := buildBinary(t)
	const (
		segBytes = 16 << 10
		prefix   = "cluster-a"
	)
	args, env := s3Flags(tg, "", prefix)
	var procs []*proc
	var addrs []string
	for i, addr := range proctest.FreeAddrs(t, 3) {
		p := &proc{id: fmt.Sprintf("sk-%d", i+1), addr: addr, dir: t.TempDir(), segBytes: segBytes, args: args, env: env}
		p.start(t, bin)
		procs = append(procs, p)
		addrs = append(addrs, addr)
	}
	defer func() {
		for _, p := range procs {
			if p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Kill()
				_ = p.cmd.Wait()
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", p.id, p.log)
			}
		}
	}()
	e := testEnv()
	w, err := walproposer.New(e, walproposer.Config{ID: "compute", TenantID: tenant, TimelineID: timeline,
		Safekeepers: addrs, PeerTimeout: 2 * time.Second, MaxReconnectBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.Start(context.Background())
	defer w.Stop()
	var end lsn.LSN
	for i := 0; i < 120; i++ {
		rec := []byte(fmt.Sprintf("rec-%04d-%s", i, bytes.Repeat([]byte{byte('a' + i%26)}, 1000)))
		if end, err = w.Append(ctx, [][]byte{rec}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WaitCommitted(ctx, end); err != nil {
		t.Fatal(err)
	}
	// The commit needs a quorum, not sk-1: wait until sk-1 has the WAL too.
	for {
		st, err := status(ctx, e, procs[0].addr)
		if err == nil && lsn.LSN(st.GetFlushLsn()) >= end {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never flushed to the commit %s: %v %v", procs[0].id, end, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	const start = 0x1000
	wal := readAll(ctx, t, e, procs[0].addr, start, end)
	sealed := uint64(end) / segBytes
	if sealed < 5 {
		t.Fatalf("only %d sealed segments below commit %s; the test needs several", sealed, end)
	}

	var want []string
	for seg := uint64(0); seg < sealed; seg++ {
		key := fmt.Sprintf("%s/wal/%s/%s/%016X", prefix, tenant, timeline, seg)
		want = append(want, key)
		var data []byte
		for {
			if data, err = raw.Get(ctx, key); err == nil {
				break
			}
			if !errors.Is(err, objstore.ErrNotFound) || ctx.Err() != nil {
				t.Fatalf("segment %s never offloaded: %v", key, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(data) != segBytes {
			t.Fatalf("%s: %d bytes, want %d", key, len(data), segBytes)
		}
		lo := max(seg*segBytes, start)
		if !bytes.Equal(data[:lo-seg*segBytes], make([]byte, lo-seg*segBytes)) {
			t.Fatalf("%s: bytes below the timeline start are not zero", key)
		}
		if !bytes.Equal(data[lo-seg*segBytes:], wal[lo-start:(seg+1)*segBytes-start]) {
			t.Fatalf("%s differs from the committed WAL", key)
		}
	}
	page, err := raw.List(ctx, "", objstore.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range page.Objects {
		got = append(got, o.Key)
	}
	// Only sealed segments below the commit LSN are offloaded, and nothing
	// lands outside the prefix.
	if !slices.Equal(got, want) {
		t.Fatalf("bucket holds %q, want %q", got, want)
	}

	w.Stop()
	for _, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range procs {
		if err := waitExit(p, 10*time.Second); err != nil {
			t.Fatalf("%s: %v", p.id, err)
		}
	}
}

// TestS3MissingBucketRefusesToStart: a safekeeper pointed at a bucket that
// does not exist exits at start-up with an error naming the bucket, rather
// than failing at its first upload.
func TestS3MissingBucketRefusesToStart(t *testing.T) {
	for _, target := range s3Targets {
		t.Run(target.name, func(t *testing.T) { testS3MissingBucketRefusesToStart(t, target.start(t)) })
	}
}

func testS3MissingBucketRefusesToStart(t *testing.T, tg s3Target) {
	bin := buildBinary(t)
	args, env := s3Flags(tg, "no-such-bucket", "p")
	p := &proc{id: "sk-1", addr: proctest.FreeAddrs(t, 1)[0], dir: t.TempDir(), args: args, env: env}
	p.start(t, bin)
	err := waitExit(p, 10*time.Second)
	if err == nil || !strings.Contains(p.log.String(), "no-such-bucket") {
		t.Fatalf("exit %v, log:\n%s", err, p.log)
	}
	if p.cmd.ProcessState == nil || p.cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1; log:\n%s", err, p.log)
	}
}

// waitExit waits for p to exit, killing it after timeout.
func waitExit(p *proc, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-done
		return fmt.Errorf("did not exit within %v", timeout)
	}
}
