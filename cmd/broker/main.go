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
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/node"
)

type options struct {
	httpAddr     string
	logLevel     string
	drainTimeout time.Duration
	broker       broker.Config
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv("STRATA_BROKER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	var envErr error
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		d, err := time.ParseDuration(envOr(name, def.String()))
		if err != nil {
			envErr = errors.Join(envErr, fmt.Errorf("environment for -%s: %w", name, err))
		}
		fs.DurationVar(p, name, d, usage)
	}
	fs.StringVar(&o.broker.ListenAddr, "listen", envOr("listen", "127.0.0.1:50051"), "gRPC listen address")
	fs.StringVar(&o.httpAddr, "http", envOr("http", ""), "HTTP address for /metrics, /live, /ready (empty: none)")
	fs.StringVar(&o.logLevel, "log-level", envOr("log-level", "info"), "debug, info, warn or error")
	dur(&o.broker.EntryTTL, "entry-ttl", 30*time.Second, "drop entries not republished for this long")
	dur(&o.drainTimeout, "drain-timeout", 5*time.Second, "how long SIGTERM waits for in-flight calls")
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, o.broker.Validate()
}

func main() {
	o, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
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
	env := node.Env{ID: "broker", Clock: clock.NewReal(), Net: grpcx.New(grpcx.Options{}),
		Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))), Log: log, Metrics: reg}
	b, err := broker.New(env, o.broker)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := b.Start(); err != nil {
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
	log.Info("broker started", "listen", b.Addr())
	<-ctx.Done()
	log.Info("shutting down")
	dctx, cancel := context.WithTimeout(context.Background(), o.drainTimeout)
	defer cancel()
	err = b.Drain(dctx)
	if httpSrv != nil {
		_ = httpSrv.Shutdown(dctx)
	}
	log.Info("stopped", "err", err)
	return err
}
