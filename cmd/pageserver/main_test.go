package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/stratadb/strata/cmd/internal/proctest"
	"io"
	"log/slog"
	"math/rand/v2"
	stdnet "net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/cmd/internal/daemon"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// binDir holds the binaries the tests run, built once (buildBinaries).
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "pageserver-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(binDir)
	os.Exit(code)
}

// bin builds the pageserver, broker, safekeeper and strata binaries once
// and returns the path of the named one.
func bin(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", binDir+"/", ".", "../broker", "../safekeeper", "../strata")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// proc is one daemon (or CLI) process a test runs.
type proc struct {
	name     string
	bin      string
	args     []string
	cmd      *exec.Cmd
	out, log *proctest.SyncBuffer
	done     chan struct{} // closed when the process was waited for
	err      error         // its exit (after done)
	env      []string      // added to the clean environment
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	p.out, p.log = &proctest.SyncBuffer{}, &proctest.SyncBuffer{}
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Env = append(proctest.CleanEnv("STRATA_"), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
}

// kill SIGKILLs the process and waits for it.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.done
}

// wait waits up to d for the process to exit and returns its error.
func (p *proc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v; stderr:\n%s", p.name, d, p.log)
		return nil
	}
}

// stopAll ends every process still running (at the end of a test) and
// shows the logs of a failed test.
func stopAll(t *testing.T, ps []*proc) {
	for _, p := range ps {
		if p.cmd == nil {
			continue
		}
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", p.name, p.log)
		}
	}
}

// waitReady polls url until it answers 200 (within 30 s).
func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParseFlagsAndEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		check   func(options) bool
	}{
		{"missing id", nil, []string{"-data-dir", "d", "-http", ":1"}, "-id is required (or set STRATA_PAGESERVER_ID)", nil},
		{"missing data dir", nil, []string{"-id", "1", "-http", ":1"}, "-data-dir is required", nil},
		{"missing http", nil, []string{"-id", "1", "-data-dir", "d"}, "-http is required (or set STRATA_PAGESERVER_HTTP)", nil},
		{"id not a number", nil, []string{"-id", "ps-1", "-data-dir", "d", "-http", ":1"}, `-id "ps-1": want a positive integer`, nil},
		{"id zero", nil, []string{"-id", "0", "-data-dir", "d", "-http", ":1"}, `-id "0"`, nil},
		{"empty listen", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-listen", ""}, "PageAddr is required", nil},
		{"flags", nil, []string{"-id", "7", "-data-dir", "d", "-http", ":1", "-listen", ":2", "-broker", "b:3", "-availability-zone", "az-1", "-auth-public-key", "k.pem"}, "",
			func(o options) bool {
				return o.ps.NodeID == 7 && o.ps.PageAddr == ":2" && o.ps.WALReceiver.BrokerAddr == "b:3" && o.ps.AvailabilityZone == "az-1" &&
					o.authKeyFile == "k.pem" && o.dataDir == "d" && o.daemon.HTTPAddr == ":1"
			}},
		{"env fallback", map[string]string{"STRATA_PAGESERVER_ID": "9", "STRATA_PAGESERVER_DATA_DIR": "e", "STRATA_PAGESERVER_HTTP": ":5",
			"STRATA_PAGESERVER_BROKER": "br:1", "STRATA_PAGESERVER_AUTH_PUBLIC_KEY": "p.pem", "STRATA_PAGESERVER_DRAIN_TIMEOUT": "3s"}, nil, "",
			func(o options) bool {
				return o.ps.NodeID == 9 && o.dataDir == "e" && o.daemon.HTTPAddr == ":5" && o.ps.WALReceiver.BrokerAddr == "br:1" &&
					o.authKeyFile == "p.pem" && o.daemon.DrainTimeout == 3*time.Second && o.ps.PageAddr == "127.0.0.1:6400"
			}},
		{"flag beats env", map[string]string{"STRATA_PAGESERVER_ID": "9"}, []string{"-id", "2", "-data-dir", "d", "-http", ":1"}, "",
			func(o options) bool { return o.ps.NodeID == 2 }},
		{"bad env duration", map[string]string{"STRATA_PAGESERVER_DRAIN_TIMEOUT": "soon"}, []string{"-id", "1", "-data-dir", "d", "-http", ":1"},
			"STRATA_PAGESERVER_DRAIN_TIMEOUT for -drain-timeout", nil},
		{"max open layer files", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-max-open-layer-files", "64"}, "",
			func(o options) bool { return o.ps.MaxOpenLayerFiles == 64 }},
		{"max open layer files default", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1"}, "",
			func(o options) bool { return o.ps.MaxOpenLayerFiles == pageserver.DefaultMaxOpenLayerFiles }},
		{"max open layer files env", map[string]string{"STRATA_PAGESERVER_MAX_OPEN_LAYER_FILES": "128"}, []string{"-id", "1", "-data-dir", "d", "-http", ":1"}, "",
			func(o options) bool { return o.ps.MaxOpenLayerFiles == 128 }},
		{"negative max open layer files", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-max-open-layer-files", "-1"},
			"MaxOpenLayerFiles -1 < 1", nil},
		{"bad env max open layer files", map[string]string{"STRATA_PAGESERVER_MAX_OPEN_LAYER_FILES": "many"}, []string{"-id", "1", "-data-dir", "d", "-http", ":1"},
			"STRATA_PAGESERVER_MAX_OPEN_LAYER_FILES for -max-open-layer-files", nil},
		{"control plane", map[string]string{"STRATA_PAGESERVER_CONTROL_PLANE_TOKEN": "tok"},
			[]string{"-id", "1", "-data-dir", "d", "-http", "127.0.0.1:9898", "-control-plane-api", "http://sc:1234/"}, "",
			func(o options) bool {
				return o.ps.ControlPlane == httpx.Client{Base: "http://sc:1234"} && o.ps.ControlPlaneToken == "tok" &&
					o.ps.AdvertiseHTTPAddr == "127.0.0.1:9898" && o.ps.AdvertisePageAddr == ""
			}},
		{"control plane from env", map[string]string{"STRATA_PAGESERVER_CONTROL_PLANE_API": "https://sc", "STRATA_PAGESERVER_ADVERTISE_HTTP": "ps1:9898",
			"STRATA_PAGESERVER_ADVERTISE_LISTEN": "ps1:6400"}, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-listen", "0.0.0.0:6400"}, "",
			func(o options) bool {
				return o.ps.ControlPlane == httpx.Client{Base: "https://sc"} && o.ps.ControlPlaneToken == "" &&
					o.ps.AdvertiseHTTPAddr == "ps1:9898" && o.ps.AdvertisePageAddr == "ps1:6400"
			}},
		{"no control plane", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1"}, "",
			func(o options) bool { return o.ps.ControlPlane == nil }},
		{"control plane with a wildcard http", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-control-plane-api", "http://sc:1"},
			`AdvertiseHTTPAddr ":1"`, nil},
		{"control plane with a wildcard listen", nil, []string{"-id", "1", "-data-dir", "d", "-http", "ps:1", "-listen", "0.0.0.0:2", "-control-plane-api", "http://sc:1"},
			`AdvertisePageAddr "0.0.0.0:2"`, nil},
		{"bad control plane url", nil, []string{"-id", "1", "-data-dir", "d", "-http", "ps:1", "-control-plane-api", "sc:1234"},
			`-control-plane-api "sc:1234": want http(s)://host:port`, nil},
		{"s3", map[string]string{"STRATA_PAGESERVER_S3_ACCESS_KEY": "ak", "STRATA_PAGESERVER_S3_SECRET_KEY": "sk",
			"STRATA_PAGESERVER_S3_ENDPOINT": "http://127.0.0.1:7070"},
			[]string{"-id", "1", "-data-dir", "d", "-http", ":1", "-s3-bucket", "b", "-s3-prefix", "p", "-s3-path-style", "-test-remote-failures", "3"}, "",
			func(o options) bool {
				return o.remote.Kind() == "s3" && o.remote.S3.Bucket == "b" && o.remote.S3.Prefix == "p/" && o.remote.S3.Endpoint == "http://127.0.0.1:7070" &&
					o.remote.S3.AccessKey == "ak" && o.remote.S3.SecretKey == "sk" && o.remote.S3.Region == "us-east-1" && o.remote.S3.PathStyle &&
					o.ps.RemoteStorage.TestFailures == 3
			}},
		{"remote dir from env", map[string]string{"STRATA_PAGESERVER_REMOTE_DIR": "/r", "STRATA_PAGESERVER_TEST_REMOTE_FAILURES": "2"},
			[]string{"-id", "1", "-data-dir", "d", "-http", ":1"}, "",
			func(o options) bool {
				return o.remote.Kind() == "dir" && o.remote.Dir == "/r" && o.ps.RemoteStorage.TestFailures == 2
			}},
		{"no remote storage", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1"}, "",
			func(o options) bool { return !o.remote.Enabled() && o.ps.RemoteStorage.TestFailures == 0 }},
		{"remote dir and s3", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-remote-dir", "r", "-s3-bucket", "b"}, "mutually exclusive", nil},
		{"s3 setting without bucket", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-s3-endpoint", "http://x"}, "-s3-endpoint is set but -s3-bucket is not", nil},
		{"test failures without a store", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-test-remote-failures", "3"},
			"-test-remote-failures without a remote store", nil},
		{"negative test failures", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-remote-dir", "r", "-test-remote-failures", "-1"},
			"TestFailures", nil},
		{"token without control plane", map[string]string{"STRATA_PAGESERVER_CONTROL_PLANE_TOKEN": "tok"}, []string{"-id", "1", "-data-dir", "d", "-http", ":1"},
			"-control-plane-token without -control-plane-api", nil},
		{"disk budget", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-remote-dir", "r", "-max-local-layer-bytes", "1073741824"}, "",
			func(o options) bool { return o.ps.RemoteStorage.MaxLocalLayerBytes == 1<<30 }},
		{"disk budget from env", map[string]string{"STRATA_PAGESERVER_REMOTE_DIR": "/r", "STRATA_PAGESERVER_MAX_LOCAL_LAYER_BYTES": "4096"},
			[]string{"-id", "1", "-data-dir", "d", "-http", ":1"}, "",
			func(o options) bool { return o.ps.RemoteStorage.MaxLocalLayerBytes == 4096 }},
		{"no disk budget by default", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-remote-dir", "r"}, "",
			func(o options) bool { return o.ps.RemoteStorage.MaxLocalLayerBytes == 0 }},
		{"disk budget without a store", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-max-local-layer-bytes", "10"},
			"-max-local-layer-bytes without a remote store", nil},
		{"negative disk budget", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-remote-dir", "r", "-max-local-layer-bytes", "-1"},
			"MaxLocalLayerBytes", nil},
		{"secondary defaults", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-remote-dir", "r"}, "",
			func(o options) bool {
				s := o.ps.RemoteStorage.Secondaries
				return s.HeatmapUploadPeriod == pageserver.DefaultHeatmapUploadPeriod && s.DownloadPeriod == pageserver.DefaultSecondaryDownloadPeriod &&
					s.MaxConcurrentDownloads == pageserver.DefaultSecondaryMaxConcurrentDownloads
			}},
		{"secondary settings", map[string]string{"STRATA_PAGESERVER_SECONDARY_DOWNLOAD_PERIOD": "7s"},
			[]string{"-id", "1", "-data-dir", "d", "-http", ":1", "-remote-dir", "r", "-heatmap-upload-period", "20s", "-secondary-max-concurrent-downloads", "2"}, "",
			func(o options) bool {
				s := o.ps.RemoteStorage.Secondaries
				return s.HeatmapUploadPeriod == 20*time.Second && s.DownloadPeriod == 7*time.Second && s.MaxConcurrentDownloads == 2
			}},
		{"negative secondary downloads", nil, []string{"-id", "1", "-data-dir", "d", "-http", ":1", "-remote-dir", "r", "-secondary-max-concurrent-downloads", "-1"},
			"MaxConcurrentDownloads", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"ID", "DATA_DIR", "HTTP", "BROKER", "AUTH_PUBLIC_KEY", "DRAIN_TIMEOUT", "LISTEN", "MAX_OPEN_LAYER_FILES",
				"CONTROL_PLANE_API", "CONTROL_PLANE_TOKEN", "ADVERTISE_HTTP", "ADVERTISE_LISTEN", "REMOTE_DIR", "S3_BUCKET", "S3_PREFIX",
				"S3_ENDPOINT", "S3_REGION", "S3_PATH_STYLE", "S3_MAX_ATTEMPTS", "S3_ACCESS_KEY", "S3_SECRET_KEY", "TEST_REMOTE_FAILURES",
				"MAX_LOCAL_LAYER_BYTES", "HEATMAP_UPLOAD_PERIOD", "SECONDARY_DOWNLOAD_PERIOD", "SECONDARY_MAX_CONCURRENT_DOWNLOADS"} {
				t.Setenv("STRATA_PAGESERVER_"+k, "")
				os.Unsetenv("STRATA_PAGESERVER_" + k)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			o, err := parse(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(o) {
				t.Fatalf("options %+v", o)
			}
		})
	}
}

// TestReadyAndAPIFollowStart: /ready and the management API answer 503
// until the node has started, then 200; /ready fails again once shutdown
// began, and shutdown waits for a start in progress.
func TestReadyAndAPIFollowStart(t *testing.T) {
	s := newServer(time.Second)
	mux := daemon.Mux(prometheus.NewRegistry(), s.Ready, false)
	mux.Handle("/", s)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/ready"); code != 503 || !strings.Contains(body, "starting") {
		t.Fatalf("/ready before start: %d %q", code, body)
	}
	if code, body := get("/v1/location_config"); code != 503 || !strings.Contains(body, "starting") {
		t.Fatalf("API before start: %d %q", code, body)
	}
	if code, _ := get("/live"); code != 200 {
		t.Fatalf("/live before start: %d", code)
	}
	env := node.Env{ID: "ps", Clock: clock.NewReal(), Net: grpcx.New(grpcx.Options{}), Disk: disk.Dir(t.TempDir()),
		Rand: rand.New(rand.NewPCG(1, 2)), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}
	stopped := false
	s.start(env, pageserver.Config{NodeID: 1, PageAddr: "127.0.0.1:0"}, func() { stopped = true })
	if s.Err() != nil || stopped {
		t.Fatalf("start: %v (stop called %v)", s.Err(), stopped)
	}
	if code, _ := get("/ready"); code != 200 {
		t.Fatalf("/ready after start: %d", code)
	}
	if code, body := get("/v1/location_config"); code != 200 || !strings.Contains(body, "tenant_shards") {
		t.Fatalf("API after start: %d %q", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/ready"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Fatalf("/ready after shutdown: %d %q", code, body)
	}

	// A start that fails cancels the daemon and is what shutdown returns.
	l, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s2 := newServer(time.Second)
	env.Metrics = prometheus.NewRegistry()
	s2.start(env, pageserver.Config{NodeID: 1, PageAddr: l.Addr().String()}, func() { stopped = true })
	if err := s2.shutdown(ctx); !stopped || err == nil || !strings.Contains(err.Error(), "page service") {
		t.Fatalf("failed start: stop called %v, shutdown %v", stopped, err)
	}
}

// runBinary runs the pageserver binary to completion (within 20 s).
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := &proc{name: "pageserver", bin: bin(t, "pageserver"), args: args}
	p.start(t)
	err := p.wait(t, 20*time.Second)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v\n%s", args, err, p.log)
	}
	return code, p.out.String(), p.log.String()
}

// TestCommandLine runs the binary: -help and -version exit 0, missing or
// bad flags exit 2 naming the flag, a failed start exits 1 with its error
// printed once.
func TestCommandLine(t *testing.T) {
	busy, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	badKey := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(badKey, []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr := proctest.FreeAddrs(t, 1)[0]
	base := []string{"-id", "1", "-data-dir", dir, "-http", httpAddr, "-listen", "127.0.0.1:0"}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  []string
		notErr   string
	}{
		{"help", []string{"-help"}, 0, "", []string{"-auth-public-key", "-availability-zone", "-broker", "STRATA_PAGESERVER_LOG_LEVEL"}, ""},
		{"version", []string{"-version"}, 0, "pageserver ", nil, ""},
		{"version reports go", []string{"-version"}, 0, runtime.Version(), nil, ""},
		{"missing id", []string{"-data-dir", dir, "-http", httpAddr}, 2, "", []string{"pageserver: -id is required (or set STRATA_PAGESERVER_ID)"}, ""},
		{"missing http", []string{"-id", "1", "-data-dir", dir}, 2, "", []string{"pageserver: -http is required (or set STRATA_PAGESERVER_HTTP)"}, ""},
		{"bad id", []string{"-id", "x", "-data-dir", dir, "-http", httpAddr}, 2, "", []string{`-id "x": want a positive integer`}, ""},
		{"unknown flag", []string{"-no-such-flag"}, 2, "", []string{"flag provided but not defined: -no-such-flag"}, ""},
		{"missing key file", append(base, "-auth-public-key", filepath.Join(dir, "none.pem")), 1, "", []string{"pageserver: -auth-public-key: open "}, ""},
		{"bad key file", append(base, "-auth-public-key", badKey), 1, "", []string{"pageserver: -auth-public-key " + badKey + ": jwtauth: bad key"}, ""},
		{"page address in use", []string{"-id", "1", "-data-dir", dir, "-http", httpAddr, "-listen", busy.Addr().String()}, 1, "",
			[]string{"pageserver: page service: ", "grpcx: listen " + busy.Addr().String(), "address already in use"}, "pageserver: pageserver:"},
		{"http address in use", []string{"-id", "1", "-data-dir", dir, "-http", busy.Addr().String(), "-listen", "127.0.0.1:0"}, 1, "",
			[]string{"pageserver: daemon: http listen"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runBinary(t, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout %q\nstderr %q", code, tc.wantCode, out, errOut)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("stdout %q lacks %q", out, tc.wantOut)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tc.notErr != "" && strings.Contains(errOut, tc.notErr) {
				t.Errorf("stderr contains %q:\n%s", tc.notErr, errOut)
			}
		})
	}
}

// TestSecondPageserverOnSameDataDir: a second pageserver on a data
// directory the first holds exits 1 naming the directory and the holder.
func TestSecondPageserverOnSameDataDir(t *testing.T) {
	addrs := proctest.FreeAddrs(t, 4)
	dir := t.TempDir()
	first := &proc{name: "first", bin: bin(t, "pageserver"), args: []string{"-id", "1", "-data-dir", dir, "-listen", addrs[0], "-http", addrs[1]}}
	first.start(t)
	defer stopAll(t, []*proc{first})
	waitReady(t, "http://"+addrs[1]+"/ready")
	code, _, errOut := runBinary(t, "-id", "2", "-data-dir", dir, "-listen", addrs[2], "-http", addrs[3])
	if code != 1 {
		t.Fatalf("second pageserver on the same data directory: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"data directory is in use", dir, fmt.Sprintf("pageserver pid %d", first.cmd.Process.Pid)} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error lacks %q:\n%s", want, errOut)
		}
	}
}

// TestControlPlaneReAttach runs the binary against a fake storage
// controller: it re-attaches at start with the token from the environment
// and its advertised addresses, takes the answered generation, and a
// controller refusing the token (401) fails the start at once.
func TestControlPlaneReAttach(t *testing.T) {
	const tenant = "0a0b0c0d0e0f00010203040506070809"
	var mu sync.Mutex
	var got []storconapi.ReAttachRequest
	var auths []string
	status := http.StatusOK
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method != "POST" || r.URL.Path != "/upcall/v1/re-attach" {
			http.NotFound(w, r)
			return
		}
		var req storconapi.ReAttachRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got, auths = append(got, req), append(auths, r.Header.Get("Authorization"))
		if status != http.StatusOK {
			http.Error(w, `{"msg":"no"}`, status)
			return
		}
		_, _ = io.WriteString(w, `{"tenants":[{"id":"`+tenant+`","gen":3,"mode":"AttachedSingle","stripe_size":2048}]}`)
	}))
	defer ctl.Close()
	addrs := proctest.FreeAddrs(t, 2)
	args := []string{"-id", "4", "-data-dir", t.TempDir(), "-listen", addrs[0], "-http", addrs[1], "-availability-zone", "az-9", "-control-plane-api", ctl.URL}
	p := &proc{name: "pageserver", bin: bin(t, "pageserver"), args: args, env: []string{"STRATA_PAGESERVER_CONTROL_PLANE_TOKEN=tok"}}
	p.start(t)
	defer stopAll(t, []*proc{p})
	waitReady(t, "http://"+addrs[1]+"/ready")
	mu.Lock()
	if len(got) != 1 || auths[0] != "Bearer tok" || got[0].NodeID != 4 || !got[0].EmptyLocalDisk || got[0].Register == nil ||
		got[0].Register.HTTPHostPort() != addrs[1] || storconapi.JoinHostPort(got[0].Register.ListenGRPCAddr, got[0].Register.ListenGRPCPort) != addrs[0] ||
		got[0].Register.AvailabilityZoneID != "az-9" {
		t.Errorf("re-attach requests %+v (authorization %q)", got, auths)
	}
	status = http.StatusUnauthorized
	mu.Unlock()
	var locs pageapi.LocationConfigList
	if err := httpx.DoJSON(context.Background(), http.DefaultClient, "GET", "http://"+addrs[1]+"/v1/location_config", nil, &locs); err != nil {
		t.Fatal(err)
	}
	if len(locs.TenantShards) != 1 || locs.TenantShards[0].ID != tenant || locs.TenantShards[0].Config == nil || *locs.TenantShards[0].Config.Generation != 3 {
		t.Fatalf("locations %+v, want the tenant at generation 3", locs)
	}
	p.kill(t)

	// Restarted against a controller refusing the token: exit 1 at once.
	start := time.Now()
	code, _, errOut := runBinary(t, append(args, "-control-plane-token", "bad")...)
	if code != 1 || !strings.Contains(errOut, "re-attach to the storage controller failed") || !strings.Contains(errOut, "not retried") {
		t.Fatalf("against a 401: exit %d\n%s", code, errOut)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a 401 took %v to fail the start, want no retries", d)
	}
}
