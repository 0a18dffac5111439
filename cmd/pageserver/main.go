package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/cmd/internal/daemon"
	"github.com/stratadb/strata/cmd/internal/remote"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// options are the daemon's flags.
type options struct {
	dataDir string
	// authKeyFile is -auth-public-key (read by run: a missing file is a
	// failed start, not a command-line error).
	authKeyFile string
	// controlPlaneAPI is -control-plane-api, the storage controller's base
	// URL ("" = no controller).
	controlPlaneAPI string
	// remote is the object store (-remote-dir or -s3-*, the flags the
	// safekeeper uses for its offload target); none: local disk only.
	remote remote.Config
	daemon daemon.Options
	ps     pageserver.Config
}

// errFlag reports a flag value parse rejects beyond what the flag package
// checks.
var errFlag = errors.New("bad flag value")

func parse(args []string) (options, error) {
	var o options
	var id string
	fs := daemon.NewFlagSet("pageserver")
	fs.String(&id, "id", "", "numeric node id (required)")
	fs.String(&o.ps.PageAddr, "listen", "127.0.0.1:6400", "gRPC listen address of the page service")
	fs.String(&o.dataDir, "data-dir", "", "directory for tenants and layer files (required)")
	fs.String(&o.ps.WALReceiver.BrokerAddr, "broker", "", "broker gRPC address (empty: no WAL receivers, timelines ingest nothing)")
	fs.String(&o.ps.AvailabilityZone, "availability-zone", "", "availability zone reported to the storage controller")
	fs.String(&o.authKeyFile, "auth-public-key", "", "PEM file of Ed25519 public keys; when set, page requests need a JWT of scope tenant and management requests one of scope pageserverapi")
	fs.Int(&o.ps.MaxOpenLayerFiles, "max-open-layer-files", pageserver.DefaultMaxOpenLayerFiles, "layer files open at once across all tenants; beyond it the least recently used are closed and reopened on demand (keep it well below the process's file-descriptor limit)")
	fs.String(&o.controlPlaneAPI, "control-plane-api", "", "storage controller base URL, e.g. http://127.0.0.1:1234: at start the pageserver re-attaches to it (takes the generations it answers, drops shards it does not list) and fails if it stays unreachable; empty: no controller, local location files are authoritative")
	fs.Secret(&o.ps.ControlPlaneToken, "control-plane-token", "JWT of scope generations_api sent to the storage controller")
	fs.String(&o.ps.AdvertiseHTTPAddr, "advertise-http", "", "host:port the storage controller reaches the management API at (default: -http, which must then be a concrete address)")
	fs.String(&o.ps.AdvertisePageAddr, "advertise-listen", "", "host:port the storage controller registers for the page service (default: -listen, which must then be a concrete address)")
	o.remote.Register(fs) // layers and indexes; none: the local disk is all there is
	fs.Int(&o.ps.RemoteStorage.TestFailures, "test-remote-failures", 0,
		"tests only: every object-store operation fails its first N attempts (transient), as Neon's test_remote_failures")
	fs.Int64(&o.ps.RemoteStorage.MaxLocalLayerBytes, "max-local-layer-bytes", 0,
		"disk budget for layer files across all tenants (needs a remote store): above it the least recently used layers already in object storage are evicted and downloaded again on use; 0: unlimited")
	sec := &o.ps.RemoteStorage.Secondaries
	fs.Duration(&sec.HeatmapUploadPeriod, "heatmap-upload-period", pageserver.DefaultHeatmapUploadPeriod,
		"how often an attached location uploads its heatmap if it changed (needs a remote store)")
	fs.Duration(&sec.DownloadPeriod, "secondary-download-period", pageserver.DefaultSecondaryDownloadPeriod,
		"how often a Secondary location reads its heatmap and downloads the layers it lacks")
	fs.Int(&sec.MaxConcurrentDownloads, "secondary-max-concurrent-downloads", pageserver.DefaultSecondaryMaxConcurrentDownloads,
		"layer downloads one Secondary location runs at once")
	o.daemon.Register(fs)
	// The management API lives on -http, so unlike the other daemons the
	// pageserver needs it.
	fs.Required("id", "data-dir", "http")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil || n == 0 {
		return o, fmt.Errorf("%w: -id %q: want a positive integer", errFlag, id)
	}
	o.ps.NodeID = n
	if err := o.controlPlane(); err != nil {
		return o, err
	}
	if err := o.remote.Validate(); err != nil {
		return o, err
	}
	if o.ps.RemoteStorage.TestFailures != 0 && !o.remote.Enabled() {
		return o, fmt.Errorf("%w: -test-remote-failures without a remote store (-remote-dir or -s3-bucket)", errFlag)
	}
	if o.ps.RemoteStorage.MaxLocalLayerBytes != 0 && !o.remote.Enabled() {
		// Nothing could be evicted: the local disk is the only copy.
		return o, fmt.Errorf("%w: -max-local-layer-bytes without a remote store (-remote-dir or -s3-bucket)", errFlag)
	}
	return o, o.ps.Validate()
}

// controlPlane turns -control-plane-api into the node's controller client.
func (o *options) controlPlane() error {
	if o.controlPlaneAPI == "" {
		if o.ps.ControlPlaneToken != "" {
			return fmt.Errorf("%w: -control-plane-token without -control-plane-api", errFlag)
		}
		return nil
	}
	u, err := url.Parse(o.controlPlaneAPI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: -control-plane-api %q: want http(s)://host:port", errFlag, o.controlPlaneAPI)
	}
	o.ps.ControlPlane = httpx.Client{Base: strings.TrimSuffix(o.controlPlaneAPI, "/")}
	if o.ps.AdvertiseHTTPAddr == "" {
		// The node's Config has no HTTPAddr in a daemon (it serves the
		// router on -http itself): advertise -http.
		o.ps.AdvertiseHTTPAddr = o.daemon.HTTPAddr
	}
	return nil
}

func main() {
	os.Exit(daemon.Main("pageserver", os.Args[1:], os.Stdout, os.Stderr, parse, run))
}

// maxStopTime bounds shutdown after the drain: ending streams, stopping WAL
// receivers, flushing every timeline and stopping background work.
const maxStopTime = time.Minute

// server is the daemon around the node: the node starts (loading its
// tenants) while the HTTP side already answers /live and, with 503, /ready
// and the management API.
type server struct {
	*daemon.StartGate
	drain time.Duration
	node  *pageserver.Node // set before the gate serves its router
}

func newServer(drain time.Duration) *server {
	return &server{StartGate: daemon.NewStartGate("pageserver", "starting (re-attaching to the storage controller, loading tenants)"), drain: drain}
}

// start runs pageserver.Start; a failure cancels the daemon (stop).
func (s *server) start(env node.Env, cfg pageserver.Config, stop context.CancelFunc) {
	s.Start(func() (http.Handler, error) {
		n, err := pageserver.Start(env, cfg)
		if err != nil {
			return nil, err
		}
		s.node = n
		return httpx.Router(n.Router()), nil
	}, stop)
}

// shutdown is the daemon's drain: wait for a start in progress, then
// Node.Shutdown with what is left of ctx's deadline as the drain.
func (s *server) shutdown(ctx context.Context) error {
	if err := s.WaitStarted(ctx); err != nil {
		return err
	}
	drain := s.drain
	if d, ok := ctx.Deadline(); ok {
		drain = time.Until(d)
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain+maxStopTime)
	defer cancel()
	if left := s.node.Shutdown(sctx, drain); len(left) > 0 {
		return fmt.Errorf("pageserver: tasks still running after shutdown: %v", left)
	}
	return nil
}

func run(o options) error {
	log, err := o.daemon.Logger(os.Stderr)
	if err != nil {
		return err
	}
	if o.authKeyFile != "" {
		pem, err := os.ReadFile(o.authKeyFile)
		if err != nil {
			return fmt.Errorf("-auth-public-key: %w", err)
		}
		if o.ps.AuthKeys, err = jwtauth.ParsePublicKeysPEM(pem); err != nil {
			return fmt.Errorf("-auth-public-key %s: %w", o.authKeyFile, err)
		}
	}
	reg := daemon.NewRegistry()
	// Before anything reads or writes the directory: a second pageserver
	// on it would write the same layer and location files.
	lock, err := daemon.LockDataDir(o.dataDir, "pageserver")
	if err != nil {
		return err
	}
	defer lock.Release()
	clk := clock.NewReal()
	gnet := grpcx.New(grpcx.Options{Reflection: []string{pageapi.PageService_ServiceDesc.ServiceName}})
	env := node.Env{ID: fmt.Sprintf("pageserver-%d", o.ps.NodeID), Clock: clk, Net: gnet, Disk: disk.Dir(o.dataDir),
		Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))), Log: log, Metrics: reg}
	if o.remote.Enabled() {
		// The same construction as the safekeeper's: a bucket refusing the
		// credentials stops the start here, not at the first upload.
		st, err := remote.Open(context.Background(), o.remote, remote.OpenOptions{Now: clk.Now, InstanceID: env.ID, Log: log})
		if err != nil {
			return err
		}
		env.Store = st
	}
	ctx, stop := daemon.SignalContext()
	defer stop()
	s := newServer(o.daemon.DrainTimeout)
	go s.start(env, o.ps, stop)
	log.Info("pageserver starting", "id", o.ps.NodeID, "listen", o.ps.PageAddr, "http", o.daemon.HTTPAddr,
		"data_dir", o.dataDir, "broker", o.ps.WALReceiver.BrokerAddr, "auth", len(o.ps.AuthKeys) > 0, "control_plane", o.controlPlaneAPI,
		"remote_storage", o.remote.Kind())
	return daemon.Serve(ctx, o.daemon, log, daemon.Service{Name: "pageserver", Registry: reg, Ready: s.Ready, Drain: s.shutdown, Handler: s.StartGate})
}
