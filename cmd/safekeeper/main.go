package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	stdnet "net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper"
)

// options are the daemon's flags.
type options struct {
	dataDir      string
	remoteDir    string
	httpAddr     string
	logLevel     string
	drainTimeout time.Duration
	sk           safekeeper.Config
}

// envOr returns the environment value for a flag name, or def.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv("STRATA_SAFEKEEPER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("safekeeper", flag.ContinueOnError)
	var envErr error
	str := func(p *string, name, def, usage string) { fs.StringVar(p, name, envOr(name, def), usage) }
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		d, err := time.ParseDuration(envOr(name, def.String()))
		if err != nil {
			envErr = errors.Join(envErr, fmt.Errorf("environment for -%s: %w", name, err))
		}
		fs.DurationVar(p, name, d, usage)
	}
	str(&o.sk.NodeID, "id", "", "safekeeper id (required)")
	str(&o.sk.ListenAddr, "listen", "127.0.0.1:5454", "gRPC listen address")
	str(&o.sk.AdvertiseAddr, "advertise", "", "address published to the broker (default: the listen address)")
	str(&o.sk.BrokerAddr, "broker", "", "broker address (empty: no broker)")
	str(&o.dataDir, "data-dir", "", "directory for timelines (required)")
	str(&o.remoteDir, "remote-dir", "", "local directory used as object store for WAL offload (empty: no offload)")
	str(&o.httpAddr, "http", "", "HTTP address for /metrics, /live, /ready (empty: none)")
	str(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	segDef, err := strconv.ParseInt(envOr("segment-bytes", "16777216"), 10, 64)
	if err != nil {
		envErr = errors.Join(envErr, fmt.Errorf("environment for -segment-bytes: %w", err))
	}
	var segBytes int64
	fs.Int64Var(&segBytes, "segment-bytes", segDef, "WAL segment size for new timelines")
	dur(&o.sk.PublishInterval, "publish-interval", time.Second, "broker publication period")
	dur(&o.drainTimeout, "drain-timeout", 5*time.Second, "how long SIGTERM waits for in-flight calls")
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.sk.SegmentBytes = segBytes
	o.sk.Offload = o.remoteDir != ""
	if o.dataDir == "" {
		return o, errors.New("safekeeper: -data-dir is required")
	}
	return o, o.sk.Validate()
}

func main() {
	o, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "safekeeper:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return err
	}
	clk := clock.NewReal()
	env := node.Env{ID: o.sk.NodeID, Clock: clk, Net: grpcx.New(grpcx.Options{}), Disk: disk.Dir(o.dataDir),
		Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))), Log: log, Metrics: reg}
	if o.remoteDir != "" {
		if err := os.MkdirAll(o.remoteDir, 0o755); err != nil {
			return err
		}
		st, err := objstore.NewLocal(disk.Dir(o.remoteDir), ".", objstore.LocalOptions{Now: clk.Now, InstanceID: o.sk.NodeID})
		if err != nil {
			return err
		}
		env.Store = st
	}
	sk, err := safekeeper.New(env, o.sk)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := sk.Start(context.Background()); err != nil {
		return err
	}
	var httpSrv *http.Server
	if o.httpAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/live", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		lis, err := stdnet.Listen("tcp", o.httpAddr)
		if err != nil {
			return err
		}
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = httpSrv.Serve(lis) }()
	}
	log.Info("safekeeper started", "id", o.sk.NodeID, "listen", sk.Addr(), "data_dir", o.dataDir)
	<-ctx.Done()
	log.Info("shutting down")
	dctx, cancel := context.WithTimeout(context.Background(), o.drainTimeout)
	defer cancel()
	err = sk.Drain(dctx)
	if httpSrv != nil {
		_ = httpSrv.Shutdown(dctx)
	}
	log.Info("stopped", "err", err)
	return err
}
