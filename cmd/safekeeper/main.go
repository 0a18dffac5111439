package main

import (
	"context"
	"math/rand/v2"
	"os"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/cmd/internal/daemon"
	"github.com/stratadb/strata/cmd/internal/remote"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper"
)

// options are the daemon's flags.
type options struct {
	dataDir string
	// walRemoval is -wal-removal (Config.DisableWALRemoval inverted).
	walRemoval bool
	remote     remote.Config
	daemon     daemon.Options
	sk         safekeeper.Config
}

func parse(args []string) (options, error) {
	var o options
	fs := daemon.NewFlagSet("safekeeper")
	fs.String(&o.sk.NodeID, "id", "", "safekeeper id (required)")
	fs.String(&o.sk.ListenAddr, "listen", "127.0.0.1:5454", "gRPC listen address")
	fs.String(&o.sk.AdvertiseAddr, "advertise", "", "address published to the broker (default: the listen address)")
	fs.String(&o.sk.BrokerAddr, "broker", "", "broker address (empty: no broker)")
	fs.String(&o.dataDir, "data-dir", "", "directory for timelines (required)")
	fs.Int64(&o.sk.SegmentBytes, "segment-bytes", 16<<20, "WAL segment size for new timelines")
	fs.Duration(&o.sk.PublishInterval, "publish-interval", time.Second, "broker publication period")
	fs.Duration(&o.sk.PublishFailureThreshold, "publish-failure-threshold", 0,
		"report not ready (/ready) once broker publication has failed this long (0: 10 × publish-interval)")
	fs.Bool(&o.walRemoval, "wal-removal", true,
		"remove WAL below what every pageserver made remote and what is offloaded (needs a remote store)")
	fs.Duration(&o.sk.RemovalInterval, "wal-removal-interval", safekeeper.DefaultRemovalInterval, "how often WAL removal runs")
	fs.Duration(&o.sk.FeedbackExpiry, "feedback-expiry", safekeeper.DefaultFeedbackExpiry,
		"a pageserver's remote_consistent_lsn stops holding WAL back once not renewed for this long (also: no removal for this long after start)")
	o.remote.Register(fs) // WAL offload target; none: no offload
	o.daemon.Register(fs)
	fs.Required("id", "data-dir")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := o.remote.Validate(); err != nil {
		return o, err
	}
	o.sk.Offload = o.remote.Enabled()
	o.sk.DisableWALRemoval = !o.walRemoval
	return o, o.sk.Validate()
}

func main() {
	os.Exit(daemon.Main("safekeeper", os.Args[1:], os.Stdout, os.Stderr, parse, run))
}

func run(o options) error {
	log, err := o.daemon.Logger(os.Stderr)
	if err != nil {
		return err
	}
	reg := daemon.NewRegistry()
	// Before anything reads or writes the directory: a second safekeeper
	// on it would interleave WAL writes with the first.
	lock, err := daemon.LockDataDir(o.dataDir, "safekeeper")
	if err != nil {
		return err
	}
	defer lock.Release()
	clk := clock.NewReal()
	env := node.Env{ID: o.sk.NodeID, Clock: clk, Net: grpcx.New(grpcx.Options{}), Disk: disk.Dir(o.dataDir),
		Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))), Log: log, Metrics: reg}
	if o.remote.Enabled() {
		st, err := remote.Open(context.Background(), o.remote, remote.OpenOptions{Now: clk.Now, InstanceID: o.sk.NodeID, Log: log})
		if err != nil {
			return err
		}
		env.Store = st
	}
	sk, err := safekeeper.New(env, o.sk)
	if err != nil {
		return err
	}
	ctx, stop := daemon.SignalContext()
	defer stop()
	if err := sk.Start(context.Background()); err != nil {
		return err
	}
	log.Info("safekeeper started", "id", o.sk.NodeID, "listen", sk.Addr(), "data_dir", o.dataDir)
	return daemon.Serve(ctx, o.daemon, log, daemon.Service{Name: "safekeeper", Registry: reg, Drain: sk.Drain, Ready: sk.Ready})
}
