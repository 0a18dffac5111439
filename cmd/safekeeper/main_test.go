package main

import (
	"bytes"
	"context"
	"fmt"
	"github.com/stratadb/strata/cmd/internal/proctest"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
)

const (
	tenant   = "0a0b0c0d0e0f00010203040506070809"
	timeline = "f0e0d0c0b0a090807060504030201000"
)

func TestParseFlagsAndEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr bool
		check   func(options) bool
	}{
		{"missing id", nil, []string{"-data-dir", "x"}, true, nil},
		{"missing data dir", nil, []string{"-id", "sk-1"}, true, nil},
		{"flags", nil, []string{"-id", "sk-1", "-data-dir", "d", "-segment-bytes", "4096"}, false,
			func(o options) bool { return o.sk.SegmentBytes == 4096 && o.sk.NodeID == "sk-1" && !o.sk.Offload }},
		{"env fallback", map[string]string{"STRATA_SAFEKEEPER_ID": "sk-9", "STRATA_SAFEKEEPER_DATA_DIR": "d",
			"STRATA_SAFEKEEPER_REMOTE_DIR": "r"}, nil, false,
			func(o options) bool { return o.sk.NodeID == "sk-9" && o.sk.Offload }},
		{"flag beats env", map[string]string{"STRATA_SAFEKEEPER_ID": "sk-9"}, []string{"-id", "sk-2", "-data-dir", "d"}, false,
			func(o options) bool { return o.sk.NodeID == "sk-2" }},
		{"bad env duration", map[string]string{"STRATA_SAFEKEEPER_PUBLISH_INTERVAL": "soon"}, []string{"-id", "a", "-data-dir", "d"}, true, nil},
		{"bad segment size", nil, []string{"-id", "a", "-data-dir", "d", "-segment-bytes", "3"}, true, nil},
		{"s3", map[string]string{"STRATA_SAFEKEEPER_S3_SECRET_KEY": "sk"},
			[]string{"-id", "a", "-data-dir", "d", "-s3-bucket", "b", "-s3-prefix", "p", "-s3-access-key", "ak"}, false,
			func(o options) bool {
				return o.sk.Offload && o.remote.Kind() == "s3" && o.remote.S3.Prefix == "p/" && o.remote.S3.SecretKey == "sk"
			}},
		{"remote dir and s3 bucket", nil, []string{"-id", "a", "-data-dir", "d", "-remote-dir", "r", "-s3-bucket", "b"}, true, nil},
		{"wal removal on by default", nil, []string{"-id", "a", "-data-dir", "d", "-remote-dir", "r"}, false,
			func(o options) bool {
				return !o.sk.DisableWALRemoval && o.sk.FeedbackExpiry == safekeeper.DefaultFeedbackExpiry
			}},
		{"wal removal off", map[string]string{"STRATA_SAFEKEEPER_WAL_REMOVAL": "false"},
			[]string{"-id", "a", "-data-dir", "d", "-remote-dir", "r", "-feedback-expiry", "1m", "-wal-removal-interval", "5s"}, false,
			func(o options) bool {
				return o.sk.DisableWALRemoval && o.sk.FeedbackExpiry == time.Minute && o.sk.RemovalInterval == 5*time.Second
			}},
		{"negative feedback expiry", nil, []string{"-id", "a", "-data-dir", "d", "-feedback-expiry", "-1s"}, true, nil},
		{"s3 setting without bucket", nil, []string{"-id", "a", "-data-dir", "d", "-s3-endpoint", "http://127.0.0.1:1"}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			o, err := parse(tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %t", err, tc.wantErr)
			}
			if tc.check != nil && !tc.check(o) {
				t.Fatalf("options %+v", o)
			}
		})
	}
}

type proc struct {
	id, addr, dir string
	httpAddr      string
	// segBytes is -segment-bytes; 0: 65536.
	segBytes int64
	// args are extra flags; env extra environment variables (KEY=value).
	args, env []string
	cmd       *exec.Cmd
	log       *bytes.Buffer
}

// binDir holds the test binary, built once for all tests (TestMain).
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "safekeeper-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(binDir)
	os.Exit(code)
}

// buildBinary builds the safekeeper binary once and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "safekeeper")
	buildOnce.Do(func() {
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

func (p *proc) start(t *testing.T, bin string) {
	p.log = &bytes.Buffer{}
	seg := p.segBytes
	if seg == 0 {
		seg = 65536
	}
	args := []string{"-id", p.id, "-listen", p.addr, "-data-dir", p.dir, "-segment-bytes", fmt.Sprint(seg), "-log-level", "warn"}
	if p.httpAddr != "" {
		args = append(args, "-http", p.httpAddr)
	}
	p.cmd = exec.Command(bin, append(args, p.args...)...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func testEnv() node.Env {
	return node.Env{ID: "test", Clock: clock.NewReal(), Net: grpcx.New(grpcx.Options{}), Rand: rand.New(rand.NewPCG(1, 1)),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}
}

// status asks a safekeeper for the timeline; NotFound means up but empty.
func status(ctx context.Context, e node.Env, addr string) (*skapi.TimelineStatus, error) {
	c, err := e.Net.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return skapi.Status(cctx, c, tenant, timeline)
}

func readAll(ctx context.Context, t *testing.T, e node.Env, addr string, start, end lsn.LSN) []byte {
	c, err := e.Net.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []byte
	for pos := start; pos < end; {
		r, err := skapi.ReadWal(ctx, c, &skapi.ReadWalRequest{
			Timeline: skapi.Ref(tenant, timeline), StartLsn: uint64(pos), EndLsn: uint64(end)})
		if err != nil {
			t.Fatalf("read %s at %s: %v", addr, pos, err)
		}
		out = append(out, r.GetWal()...)
		pos += lsn.LSN(len(r.GetWal()))
	}
	return out
}

// TestThreeProcesses runs three real safekeeper processes on loopback,
// commits through a walproposer, SIGKILLs one, keeps committing, restarts
// it and checks it catches up with identical WAL; then stops all with
// SIGTERM and expects clean exits.
func TestThreeProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bin := buildBinary(t)
	var procs []*proc
	var addrs []string
	free := proctest.FreeAddrs(t, 4)
	for i := 1; i <= 3; i++ {
		p := &proc{id: fmt.Sprintf("sk-%d", i), addr: free[i-1], dir: t.TempDir()}
		if i == 1 {
			p.httpAddr = free[3]
		}
		p.start(t, bin)
		procs = append(procs, p)
		addrs = append(addrs, p.addr)
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

	var want [][]byte
	commitN := func(tag string, n int) lsn.LSN {
		var end lsn.LSN
		for i := 0; i < n; i++ {
			rec := []byte(fmt.Sprintf("%s-%04d-%s", tag, i, bytes.Repeat([]byte{'x'}, 200)))
			if end, err = w.Append(ctx, [][]byte{rec}); err != nil {
				t.Fatal(err)
			}
			want = append(want, rec)
		}
		if err := w.WaitCommitted(ctx, end); err != nil {
			t.Fatal(err)
		}
		return end
	}
	commitN("before", 100)
	if err := procs[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = procs[2].cmd.Wait()
	end := commitN("degraded", 100)
	procs[2].start(t, bin)
	end = max(end, commitN("after", 20))

	for {
		s, err := status(ctx, e, procs[2].addr)
		if err == nil && lsn.LSN(s.GetFlushLsn()) >= end {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("restarted safekeeper never caught up to %s: %v %v", end, s, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	const start = 0x1000
	ref := readAll(ctx, t, e, procs[0].addr, start, end)
	recs, err := skproto.SplitFrames(ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i := range want {
		if !bytes.Equal(recs[i], want[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	for _, p := range procs[1:] {
		if got := readAll(ctx, t, e, p.addr, start, end); !bytes.Equal(got, ref) {
			t.Fatalf("%s WAL differs from sk-1", p.id)
		}
	}

	// The daemon's metrics show the WAL it wrote.
	resp, err := http.Get("http://" + procs[0].httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte("safekeeper_wal_written_bytes_total")) {
		t.Fatalf("/metrics lacks the WAL counter:\n%.500s", body)
	}

	w.Stop()
	for _, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range procs {
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s exited with %v", p.id, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not stop on SIGTERM", p.id)
		}
	}
}
