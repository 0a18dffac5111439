package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	stdnet "net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/cmd/internal/daemon"
	"github.com/stratadb/strata/cmd/internal/storconpg"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/storcon"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// Defaults of the flags.
const (
	defaultListen  = "127.0.0.1:1234"
	defaultDataDir = "storcon-data"
	// storeDir is the embedded store's directory inside -data-dir (the
	// lock file sits beside it).
	storeDir = "store"
	// pageserverIdleConns bounds the idle keep-alive connections kept per
	// pageserver: reconciles and heartbeats reuse them.
	pageserverIdleConns = 8
)

// Environment variables read as fallbacks of secrets, after the
// STRATA_STORCON_<FLAG> form, under the names Neon's controller uses.
var secretAliases = map[string]string{
	"database-url":         "STORCON_DATABASE_URL",
	"pageserver-jwt-token": "PAGESERVER_JWT_TOKEN",
	"compute-hook-token":   "CONTROL_PLANE_JWT_TOKEN",
}

// options are the daemon's flags.
type options struct {
	listen         string
	dataDir        string
	databaseURL    string
	dbMaxConns     int
	dbStmtTimeout  time.Duration
	publicKeyFiles string // comma-separated PEM files
	pageserverTok  string
	computeHookURL string
	computeHookTok string
	predecessorURL string
	predecessorTok string
	daemon         daemon.Options
	sc             storcon.Config
}

// errFlag reports a flag value parse rejects beyond what the flag package
// checks.
var errFlag = errors.New("bad flag value")

func parse(args []string) (options, error) {
	var o options
	fs := daemon.NewFlagSet("storcon")
	fs.String(&o.listen, "listen", defaultListen, "HTTP address of the API, /metrics, /status, /live, /ready (and /debug/pprof with -pprof)")
	fs.String(&o.dataDir, "data-dir", defaultDataDir, "directory of the embedded store (ignored with -database-url; must then be left at its default)")
	fs.Secret(&o.databaseURL, "database-url", "PostgreSQL URL (postgres://user:password@host:port/db); empty: the embedded store in -data-dir. Also read from "+secretAliases["database-url"])
	fs.Int(&o.dbMaxConns, "db-max-conns", int(storconpg.DefaultMaxConns), "PostgreSQL connection pool size")
	fs.Duration(&o.dbStmtTimeout, "db-statement-timeout", storconpg.DefaultStatementTimeout, "PostgreSQL statement_timeout of every connection; must stay below -lost-write-settle")
	fs.Duration(&o.sc.LostWriteSettle, "lost-write-settle", storcon.DefaultLostWriteSettle, "after a store write whose answer was lost, how long to wait before reading its outcome back (a write still on its way must have landed)")
	fs.String(&o.publicKeyFiles, "public-key", "", "comma-separated PEM files of Ed25519 public keys; when set, every API call but /metrics, /status, /live and /ready needs a JWT with the route's scope (admin passes all)")
	fs.Secret(&o.pageserverTok, "pageserver-jwt-token", "JWT sent to pageservers (scope pageserverapi). Also read from "+secretAliases["pageserver-jwt-token"])
	fs.String(&o.computeHookURL, "compute-hook-url", "", "base URL of the compute hook: notifications are PUT to <url>"+storconapi.NotifyAttachPath+" (empty: no compute hook)")
	fs.Secret(&o.computeHookTok, "compute-hook-token", "bearer token sent to the compute hook. Also read from "+secretAliases["compute-hook-token"])
	fs.String(&o.predecessorURL, "predecessor-url", "", "base URL of the controller this one takes over from, sharing its -database-url: it is asked to step down ("+storconapi.RouteStepDown+") before the store is read, and given up on after -step-down-timeout (empty: none)")
	fs.Duration(&o.sc.StepDownTimeout, "step-down-timeout", storcon.DefaultStepDownTimeout, "how long the -predecessor-url controller is asked to step down before this one proceeds without it")
	fs.Secret(&o.predecessorTok, "predecessor-token", "JWT of scope admin sent to the -predecessor-url controller")
	fs.Duration(&o.sc.HeartbeatInterval, "heartbeat-interval", storcon.DefaultHeartbeatInterval, "how often every pageserver's utilization is polled")
	fs.Duration(&o.sc.HeartbeatTimeout, "heartbeat-timeout", storcon.DefaultHeartbeatTimeout, "bound of one heartbeat")
	fs.Duration(&o.sc.OfflineAfter, "offline-after", storcon.DefaultOfflineAfter, "a pageserver without a successful heartbeat this long is offline")
	fs.Duration(&o.sc.ReconcileAllInterval, "reconcile-all-interval", storcon.DefaultReconcileAllInterval, "how often every shard that needs it is reconciled in the background")
	fs.Int(&o.sc.MaxConcurrentReconciles, "max-concurrent-reconciles", storcon.DefaultMaxConcurrentReconciles, "reconciles running at once")
	fs.Duration(&o.sc.LocationConfigTimeout, "location-config-timeout", storcon.DefaultLocationConfigTimeout, "bound of one location_config call to a pageserver")
	fs.Duration(&o.sc.StartupBudget, "startup-budget", storcon.DefaultStartupBudget, "bound of start-up reconcile")
	fs.Duration(&o.sc.MigrationLSNWait, "migration-lsn-wait", storcon.DefaultMigrationLSNWait, "how long a live migration waits for the destination to catch up")
	o.daemon.Register(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, p := range map[string]*string{"database-url": &o.databaseURL, "pageserver-jwt-token": &o.pageserverTok, "compute-hook-token": &o.computeHookTok} {
		if *p != "" || given[name] {
			continue
		}
		if _, ok := os.LookupEnv(fs.EnvName(name)); ok {
			continue
		}
		if v, ok := os.LookupEnv(secretAliases[name]); ok {
			*p = v
		}
	}
	switch {
	case o.listen == "":
		return o, fmt.Errorf("%w: -listen is required", errFlag)
	case o.daemon.HTTPAddr != "" && o.daemon.HTTPAddr != o.listen:
		// One address serves everything; a second one would only confuse.
		return o, fmt.Errorf("%w: -http %q: the controller serves metrics and health on -listen; leave -http unset", errFlag, o.daemon.HTTPAddr)
	case o.databaseURL == "" && o.dataDir == "":
		return o, fmt.Errorf("%w: -data-dir is empty and no -database-url is set", errFlag)
	case o.databaseURL != "" && o.dataDir != defaultDataDir:
		return o, fmt.Errorf("%w: -data-dir %q and -database-url: choose one store", errFlag, o.dataDir)
	case o.dbMaxConns <= 0 || o.dbMaxConns > 1<<20:
		return o, fmt.Errorf("%w: -db-max-conns %d: want 1 or more", errFlag, o.dbMaxConns)
	case o.dbStmtTimeout <= 0:
		return o, fmt.Errorf("%w: -db-statement-timeout %v: want more than 0", errFlag, o.dbStmtTimeout)
	case o.databaseURL != "" && o.sc.LostWriteSettle <= o.dbStmtTimeout:
		// A write whose answer was lost may commit until its statement
		// times out: read back earlier, its outcome could be missed.
		return o, fmt.Errorf("%w: -lost-write-settle %v must exceed -db-statement-timeout %v", errFlag, o.sc.LostWriteSettle, o.dbStmtTimeout)
	}
	if o.computeHookURL != "" {
		if !strings.HasPrefix(o.computeHookURL, "http://") && !strings.HasPrefix(o.computeHookURL, "https://") {
			return o, fmt.Errorf("%w: -compute-hook-url %q: want http:// or https://", errFlag, o.computeHookURL)
		}
		// A URL naming the notify-attach path itself is accepted as well.
		o.computeHookURL = strings.TrimSuffix(strings.TrimSuffix(o.computeHookURL, "/"), storconapi.NotifyAttachPath)
	}
	if o.predecessorURL != "" {
		if !strings.HasPrefix(o.predecessorURL, "http://") && !strings.HasPrefix(o.predecessorURL, "https://") {
			return o, fmt.Errorf("%w: -predecessor-url %q: want http:// or https://", errFlag, o.predecessorURL)
		}
		if o.databaseURL == "" {
			// The embedded store is one process's: a successor on another
			// directory would share nothing with it.
			return o, fmt.Errorf("%w: -predecessor-url needs -database-url: only a shared database is handed over", errFlag)
		}
		o.predecessorURL = strings.TrimSuffix(o.predecessorURL, "/")
	}
	o.daemon.HTTPAddr = o.listen
	o.sc.PageserverToken = o.pageserverTok
	o.sc.ComputeHookToken = o.computeHookTok
	return o, o.sc.Validate()
}

func main() {
	os.Exit(daemon.Main("storcon", os.Args[1:], os.Stdout, os.Stderr, parse, run))
}

// maxStopTime bounds Service.Shutdown after the drain deadline.
const maxStopTime = 30 * time.Second

// server is the daemon around the service. The HTTP side answers /live at
// once and the API with 503 until storcon.Start returned; /ready follows
// the service's start-up reconcile.
type server struct {
	*daemon.StartGate
	svc *storcon.Service // set before the gate serves its router
	// closeStore closes a store the daemon opened (PostgreSQL); nil for
	// the embedded store, which the service opens and closes.
	closeStore func() error
}

func (s *server) ready() error {
	if err := s.Ready(); err != nil {
		return err
	}
	if !s.svc.Ready() {
		return errors.New("start-up reconcile in progress")
	}
	return nil
}

// start runs storcon.Start; a failure cancels the daemon (stop).
func (s *server) start(env node.Env, cfg storcon.Config, stop context.CancelFunc) {
	s.Start(func() (http.Handler, error) {
		svc, err := storcon.Start(env, cfg)
		if err != nil {
			return nil, err
		}
		s.svc = svc
		return httpx.Router(svc.Router()), nil
	}, stop)
}

// shutdown waits for a start in progress, then shuts the service down
// within ctx's deadline (plus maxStopTime) and closes a store the daemon
// opened.
func (s *server) shutdown(ctx context.Context) error {
	err := s.WaitStarted(ctx)
	if errors.Is(err, daemon.ErrStillStarting) {
		return err
	}
	if s.svc != nil {
		sctx, cancel := context.WithTimeout(context.Background(), maxStopTime)
		if d, ok := ctx.Deadline(); ok {
			cancel()
			sctx, cancel = context.WithDeadline(context.Background(), d.Add(maxStopTime))
		}
		s.svc.Shutdown(sctx)
		cancel()
	}
	if s.closeStore != nil {
		err = errors.Join(err, s.closeStore())
	}
	return err
}

// readPublicKeys reads every key of the comma-separated PEM files.
func readPublicKeys(files string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, f := range strings.Split(files, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("-public-key: %w", err)
		}
		k, err := jwtauth.ParsePublicKeysPEM(pem)
		if err != nil {
			return nil, fmt.Errorf("-public-key %s: %w", f, err)
		}
		keys = append(keys, k...)
	}
	return keys, nil
}

// pageserverDialer returns Config.DialPageserver: HTTP clients sharing one
// transport, so connections to a pageserver are reused.
func pageserverDialer() func(addr string) net.HTTPClient {
	hc := &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&stdnet.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: pageserverIdleConns,
		IdleConnTimeout:     90 * time.Second,
	}}
	return func(addr string) net.HTTPClient { return httpx.Client{Base: "http://" + addr, HTTP: hc} }
}

func run(o options) error {
	log, err := o.daemon.Logger(os.Stderr)
	if err != nil {
		return err
	}
	if o.publicKeyFiles != "" {
		if o.sc.AuthKeys, err = readPublicKeys(o.publicKeyFiles); err != nil {
			return err
		}
	}
	reg := daemon.NewRegistry()
	clk := clock.NewReal()
	env := node.Env{ID: "storcon", Clock: clk, Net: grpcx.New(grpcx.Options{}),
		Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))), Log: log, Metrics: reg}
	s := &server{StartGate: daemon.NewStartGate("storcon", "starting")}
	store := "embedded " + o.dataDir
	if o.databaseURL == "" {
		// Before anything reads or writes the directory: two controllers
		// on one store would hand out the same generations.
		lock, err := daemon.LockDataDir(o.dataDir, "storcon")
		if err != nil {
			return err
		}
		defer lock.Release()
		env.Disk = disk.Dir(o.dataDir)
		o.sc.DataDir = storeDir
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), storconpg.DefaultConnectTimeout+time.Minute)
		pg, err := storconpg.Open(ctx, storconpg.Config{URL: o.databaseURL, MaxConns: int32(o.dbMaxConns), StatementTimeout: o.dbStmtTimeout})
		cancel()
		if err != nil {
			// The URL may hold a password: the error names the store, and
			// pgx's own messages do not repeat the URL.
			return fmt.Errorf("-database-url: %w", err)
		}
		o.sc.Store = pg
		s.closeStore = pg.Close
		store = "postgresql"
	}
	o.sc.DialPageserver = pageserverDialer()
	if o.computeHookURL != "" {
		o.sc.ComputeHook = httpx.Client{Base: o.computeHookURL, HTTP: &http.Client{}}
	}
	if o.predecessorURL != "" {
		o.sc.Predecessor = httpx.Client{Base: o.predecessorURL, HTTP: &http.Client{}}
		o.sc.PredecessorToken = o.predecessorTok
	}
	ctx, stop := daemon.SignalContext()
	defer stop()
	go s.start(env, o.sc, stop)
	log.Info("storcon starting", "listen", o.listen, "store", store, "auth", len(o.sc.AuthKeys) > 0,
		"compute_hook", o.computeHookURL != "", "pageserver_token", o.sc.PageserverToken != "", "predecessor", o.predecessorURL)
	return daemon.Serve(ctx, o.daemon, log, daemon.Service{Name: "storcon", Registry: reg, Ready: s.ready, Drain: s.shutdown, Handler: s.StartGate})
}
