package persist_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/persist/persisttest"
	"github.com/stratadb/strata/sim/simdisk"
	"github.com/stratadb/strata/sim/simnet"
)

// serveDisk starts a store server of a DiskStore in dir of fsys and
// returns its router; the server is closed when the test ends.
func serveDisk(t *testing.T, fsys disk.FS, dir string) (*persist.Server, *net.Router) {
	t.Helper()
	clk := clock.NewReal()
	srv := persist.NewServer(clk, nil, func() (persist.Store, error) {
		return persist.OpenDisk(clk, fsys, dir, persist.DiskConfig{})
	})
	if err := srv.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	rt := net.NewRouter()
	srv.Register(rt)
	return srv, rt
}

func newRemote(t *testing.T, hc net.HTTPClient) *persist.Remote {
	t.Helper()
	r, err := persist.NewRemote(clock.NewReal(), hc, persist.RemoteConfig{CallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// httpOpener serves the store over real HTTP (httpx). Each open is a
// server restart: the previous server's store is closed and a new server
// opens the same directory, so the suite's reopen checks cover what the
// server made durable, not a process that kept it in memory.
func httpOpener(t *testing.T) persisttest.Opener {
	fsys, dir := disk.Dir(t.TempDir()), "storcon"
	var prev *persist.Server
	var prevHTTP *httptest.Server
	return func(t *testing.T) persist.Store {
		t.Helper()
		if prev != nil {
			_ = prev.Close()
			prevHTTP.Close()
		}
		srv, rt := serveDisk(t, fsys, dir)
		ts := httptest.NewServer(httpx.Router(rt))
		t.Cleanup(ts.Close)
		prev, prevHTTP = srv, ts
		return newRemote(t, httpx.Client{Base: ts.URL})
	}
}

// TestRemoteConformanceHTTP runs the conformance suite on the remote store
// over real HTTP: every call crosses the wire as JSON, and the error classes
// come back as themselves.
func TestRemoteConformanceHTTP(t *testing.T) {
	persisttest.Run(t, httpOpener)
}

// seamOpener serves the store over the net seam (simnet on the real clock),
// the transport the simulator uses: SeamHTTP's envelope around the same
// routes.
func seamOpener(t *testing.T) persisttest.Opener {
	fsys, dir := simdisk.New(simdisk.Options{}), "storcon"
	network := simnet.New(clock.NewReal(), rand.New(rand.NewPCG(1, 2)), simnet.Options{})
	var prev *persist.Server
	var prevLis net.Listener
	return func(t *testing.T) persist.Store {
		t.Helper()
		if prev != nil {
			_ = prev.Close()
			prevLis.Close()
		}
		srv, rt := serveDisk(t, fsys, dir)
		mux := net.NewMux()
		rt.Register(mux)
		lis, err := network.Node("db").Listen("db:5432", mux)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lis.Close() })
		prev, prevLis = srv, lis
		return newRemote(t, net.DialHTTP{Net: network.Node("controller"), Addr: "db:5432"})
	}
}

// TestRemoteConformanceSeam runs the suite over the net seam.
func TestRemoteConformanceSeam(t *testing.T) {
	persisttest.Run(t, seamOpener)
}

// lostAnswer is an HTTP client whose request reaches the server but whose
// answer is lost on the way back.
type lostAnswer struct{ inner net.HTTPClient }

func (c lostAnswer) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	if _, err := c.inner.Do(ctx, req, in, out); err != nil {
		return 0, err
	}
	return 0, net.Errorf(net.Unavailable, "connection reset before the answer")
}

// TestRemoteUnknownOutcome: a call whose answer is lost, a server that is
// not there, and an answer that is not the store's own (a router's 404 for
// a path it does not serve) are ErrUnreachable — never an argument class,
// which would tell the controller that nothing changed — and a lost answer
// may indeed hide a change that was made.
func TestRemoteUnknownOutcome(t *testing.T) {
	ctx := context.Background()
	_, rt := serveDisk(t, simdisk.New(simdisk.Options{}), "storcon")
	ts := httptest.NewServer(httpx.Router(rt))
	defer ts.Close()
	good := newRemote(t, httpx.Client{Base: ts.URL})
	row := persisttest.Tenant(1, 0)[0]
	if err := good.InsertTenantShards(ctx, []persist.TenantShard{row}); err != nil {
		t.Fatal(err)
	}

	lost := newRemote(t, lostAnswer{httpx.Client{Base: ts.URL}})
	_, err := lost.IncrementGeneration(ctx, row.ID, 1)
	persisttest.WantClass(t, "increment with a lost answer", err, persist.ErrUnreachable)
	if net.CodeOf(err) != net.Unavailable {
		t.Fatalf("increment with a lost answer: code %v, want the transport's Unavailable", net.CodeOf(err))
	}
	g, node, err := good.Generation(ctx, row.ID)
	if err != nil || g != 1 || node != 1 {
		t.Fatalf("after the lost answer the generation is %d (node %d, err %v): the increment was made, want 1", g, node, err)
	}

	gone := httptest.NewServer(httpx.Router(net.NewRouter()))
	addr := gone.URL
	gone.Close()
	down := newRemote(t, httpx.Client{Base: addr})
	_, err = down.ListNodes(ctx)
	persisttest.WantClass(t, "a server that is down", err, persist.ErrUnreachable)

	// A server that answers 404 for every path: not the store's "not found".
	other := httptest.NewServer(httpx.Router(net.NewRouter()))
	defer other.Close()
	wrong := newRemote(t, httpx.Client{Base: other.URL})
	_, _, err = wrong.Generation(ctx, row.ID)
	persisttest.WantClass(t, "a server without the store's routes", err, persist.ErrUnreachable)
	if net.CodeOf(err) != net.NotFound {
		t.Fatalf("the router's answer should stay reachable: code %v", net.CodeOf(err))
	}
}

// failingFS fails every sync once armed, breaking the DiskStore
// (persist.ErrFailed) the way a failed fsync does.
type failingFS struct {
	disk.FS
	fail *bool
}

type failingFile struct {
	disk.File
	fail *bool
}

func (f failingFS) Create(name string) (disk.File, error) {
	file, err := f.FS.Create(name)
	return wrapFile(file, f.fail), err
}

func (f failingFS) OpenRW(name string) (disk.File, error) {
	file, err := f.FS.OpenRW(name)
	return wrapFile(file, f.fail), err
}

func wrapFile(file disk.File, fail *bool) disk.File {
	if file == nil {
		return nil
	}
	return failingFile{File: file, fail: fail}
}

func (f failingFile) Sync() error {
	if *f.fail {
		return errors.New("injected sync failure")
	}
	return f.File.Sync()
}

// TestRemoteServerReopensFailedStore: a write whose sync fails breaks the
// embedded store (ErrFailed); the client sees an unknown outcome, and the
// server reopens the store on the next call instead of failing every
// client until someone restarts it.
func TestRemoteServerReopensFailedStore(t *testing.T) {
	ctx := context.Background()
	fail := false
	fsys := failingFS{FS: simdisk.New(simdisk.Options{}), fail: &fail}
	_, rt := serveDisk(t, fsys, "storcon")
	ts := httptest.NewServer(httpx.Router(rt))
	defer ts.Close()
	r := newRemote(t, httpx.Client{Base: ts.URL})
	row := persisttest.Tenant(1, 0)[0]
	if err := r.InsertTenantShards(ctx, []persist.TenantShard{row}); err != nil {
		t.Fatal(err)
	}
	fail = true
	_, err := r.IncrementGeneration(ctx, row.ID, 1)
	persisttest.WantClass(t, "increment whose sync fails", err, persist.ErrUnreachable)
	if errors.Is(err, persist.ErrFailed) {
		t.Fatalf("the server's failure must not reach the client as ErrFailed (the controller would stop until restarted): %v", err)
	}
	fail = false
	g, err := r.IncrementGeneration(ctx, row.ID, 2)
	if err != nil {
		t.Fatalf("increment after the failure: %v (the server did not reopen its store)", err)
	}
	if g != 1 && g != 2 {
		t.Fatalf("generation after the failed increment: %d, want 1 (the failed one lost) or 2 (it was durable)", g)
	}
	if got, node, err := r.Generation(ctx, row.ID); err != nil || got != g || node != 2 {
		t.Fatalf("stored generation %d node %d (%v), want %d node 2", got, node, err, g)
	}
}

// slowStore delays every increment, so a caller can give up while one is
// under way on the server.
type slowStore struct {
	persist.Store
	delay time.Duration
}

func (s slowStore) IncrementGeneration(ctx context.Context, id shard.TenantShardID, node persist.NodeID) (layer.Generation, error) {
	time.Sleep(s.delay)
	return s.Store.IncrementGeneration(ctx, id, node)
}

// TestRemoteCallOutlivesCallerCancel: a caller whose context ends while
// its increment is under way still gets the increment's real outcome —
// cancelling the caller must not make a definite outcome unknown (the
// controller would then hold a generation the store has moved past).
func TestRemoteCallOutlivesCallerCancel(t *testing.T) {
	clk := clock.NewReal()
	fsys := simdisk.New(simdisk.Options{})
	srv := persist.NewServer(clk, nil, func() (persist.Store, error) {
		ds, err := persist.OpenDisk(clk, fsys, "storcon", persist.DiskConfig{})
		return slowStore{Store: ds, delay: 200 * time.Millisecond}, err
	})
	defer srv.Close()
	rt := net.NewRouter()
	srv.Register(rt)
	ts := httptest.NewServer(httpx.Router(rt))
	defer ts.Close()
	r := newRemote(t, httpx.Client{Base: ts.URL})
	row := persisttest.Tenant(1, 0)[0]
	if err := r.InsertTenantShards(context.Background(), []persist.TenantShard{row}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	g, err := r.IncrementGeneration(ctx, row.ID, 1)
	if err != nil || g != 1 {
		t.Fatalf("increment whose caller gave up while it ran: %d, %v; want its outcome, generation 1", g, err)
	}
}
