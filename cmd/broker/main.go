package main

import (
	"math/rand/v2"
	"os"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/cmd/internal/daemon"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/node"
)

type options struct {
	daemon daemon.Options
	broker broker.Config
}

func parse(args []string) (options, error) {
	var o options
	fs := daemon.NewFlagSet("broker")
	fs.String(&o.broker.ListenAddr, "listen", "127.0.0.1:50051", "gRPC listen address")
	fs.Duration(&o.broker.EntryTTL, "entry-ttl", 30*time.Second, "drop entries not republished for this long")
	o.daemon.Register(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, o.broker.Validate()
}

func main() {
	os.Exit(daemon.Main("broker", os.Args[1:], os.Stdout, os.Stderr, parse, run))
}

func run(o options) error {
	log, err := o.daemon.Logger(os.Stderr)
	if err != nil {
		return err
	}
	reg := daemon.NewRegistry()
	env := node.Env{ID: "broker", Clock: clock.NewReal(), Net: grpcx.New(grpcx.Options{}),
		Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))), Log: log, Metrics: reg}
	b, err := broker.New(env, o.broker)
	if err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext()
	defer stop()
	if err := b.Start(); err != nil {
		return err
	}
	log.Info("broker started", "listen", b.Addr())
	return daemon.Serve(ctx, o.daemon, log, daemon.Service{Name: "broker", Registry: reg, Drain: b.Drain})
}
