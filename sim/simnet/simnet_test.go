package simnet_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/nettest"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/simnet"
)

// TestConformanceRealClock runs the seam's conformance suite with the real
// clock: tasks are goroutines and latency is wall time.
func TestConformanceRealClock(t *testing.T) {
	nettest.Run(t, nettest.HarnessFunc(func(t *testing.T, body func(nettest.World)) {
		clk := clock.NewReal()
		n := simnet.New(clk, rand.New(rand.NewPCG(1, 2)), simnet.Options{
			Latency: simnet.Latency{Base: 50 * time.Microsecond, Jitter: 100 * time.Microsecond},
		})
		body(nettest.World{Clock: clk, Server: n.Node("srv"), Client: n.Node("cli"), ListenAddr: "srv:0", UnusedAddr: "nobody:1"})
	}))
}

// runSim runs body as the main task of a simulated world and fails the test
// if the run does (deadlock, panic, budget). It returns the trace hash.
func runSim(t *testing.T, seed uint64, opts simnet.Options, body func(w *sim.World, n *simnet.Network)) uint64 {
	t.Helper()
	w := sim.New(sim.Options{Seed: seed})
	prev := opts.OnDeliver
	opts.OnDeliver = func(from, to, method string, size int) {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s>%s %s", from, to, method)
		w.Note(h.Sum64(), uint64(size))
		if prev != nil {
			prev(from, to, method, size)
		}
	}
	n := simnet.New(w.Clock(), w.NewRand("net"), opts)
	if err := w.Run(func(w *sim.World) error {
		body(w, n)
		return nil
	}); err != nil {
		t.Fatalf("simulation failed: %v", err)
	}
	return w.Hash()
}

// TestConformanceSimulator runs the same suite under the simulator's
// single-baton scheduler and virtual time.
func TestConformanceSimulator(t *testing.T) {
	nettest.Run(t, nettest.HarnessFunc(func(t *testing.T, body func(nettest.World)) {
		runSim(t, 7, simnet.Options{}, func(w *sim.World, n *simnet.Network) {
			body(nettest.World{Clock: w.Clock(), Server: n.Node("srv"), Client: n.Node("cli"), ListenAddr: "srv:0", UnusedAddr: "nobody:1"})
		})
	}))
}

const (
	mEcho  = "/strata.test.Sim/Echo"
	mCount = "/strata.test.Sim/Count"
	mHold  = "/strata.test.Sim/Hold"
)

type fixture struct {
	t        *testing.T
	clk      clock.Clock
	n        *simnet.Network
	mux      *net.Mux
	served   int // unary calls that reached a handler
	streamCh []error
	lis      net.Listener
	conn     net.Conn
}

func newFixture(t *testing.T, w *sim.World, n *simnet.Network) *fixture {
	f := &fixture{t: t, clk: w.Clock(), n: n, mux: net.NewMux()}
	net.HandleUnaryBytes(f.mux, mEcho, func(ctx context.Context, b []byte) ([]byte, error) {
		f.served++
		return b, nil
	})
	net.HandleStream(f.mux, mHold, func(ctx context.Context, s net.ServerStream) error {
		for {
			b, err := s.Recv()
			if err != nil {
				f.streamCh = append(f.streamCh, err)
				return err
			}
			if err := s.Send(b); err != nil {
				f.streamCh = append(f.streamCh, err)
				return err
			}
		}
	})
	var err error
	if f.lis, err = n.Node("srv").Listen("srv:5454", f.mux); err != nil {
		t.Errorf("Listen: %v", err)
		return nil
	}
	if f.conn, err = n.Node("cli").Dial(context.Background(), "srv:5454"); err != nil {
		t.Errorf("Dial: %v", err)
		return nil
	}
	return f
}

// call makes one echo call with timeout d and returns how much virtual
// time it took and its error.
func (f *fixture) call(d time.Duration) (time.Duration, error) {
	ctx, cancel := clock.WithTimeout(f.clk, context.Background(), d)
	defer cancel()
	start := f.clk.Mono()
	got, err := f.conn.Call(ctx, mEcho, []byte("ping"))
	if err == nil && string(got) != "ping" {
		err = fmt.Errorf("got %q", got)
	}
	return f.clk.Mono() - start, err
}

// openHold opens a stream on mHold and checks one round trip.
func (f *fixture) openHold(ctx context.Context) net.ClientStream {
	s, err := f.conn.Stream(ctx, mHold)
	if err != nil {
		f.t.Errorf("Stream: %v", err)
		return nil
	}
	if err := s.Send([]byte("a")); err != nil {
		f.t.Errorf("Send: %v", err)
		return nil
	}
	if b, err := s.Recv(); err != nil || string(b) != "a" {
		f.t.Errorf("Recv: %q %v", b, err)
		return nil
	}
	return s
}

func TestPartitions(t *testing.T) {
	runSim(t, 1, simnet.Options{DeadLinkTimeout: 10 * time.Second}, func(w *sim.World, n *simnet.Network) {
		f := newFixture(t, w, n)
		if f == nil {
			return
		}
		if _, err := f.call(time.Second); err != nil {
			t.Errorf("healthy call: %v", err)
		}

		n.Partition("cli", "srv")
		if el, err := f.call(time.Second); net.CodeOf(err) != net.DeadlineExceeded || el != time.Second {
			t.Errorf("partitioned call with 1s deadline: %v after %v, want DeadlineExceeded after 1s", err, el)
		}
		if el, err := f.call(time.Minute); net.CodeOf(err) != net.Unavailable || el != 10*time.Second {
			t.Errorf("partitioned call with long deadline: %v after %v, want Unavailable after the 10s dead-link timeout", err, el)
		}
		n.Heal()
		if _, err := f.call(time.Second); err != nil {
			t.Errorf("call after Heal: %v", err)
		}

		// One way: requests arrive and are served, responses are lost.
		before := f.served
		n.PartitionOneWay("srv", "cli")
		if _, err := f.call(time.Second); net.CodeOf(err) != net.DeadlineExceeded {
			t.Errorf("call with the return path cut: %v, want DeadlineExceeded", err)
		}
		if f.served != before+1 {
			t.Errorf("handler ran %d times across a one-way partition, want 1", f.served-before)
		}
		n.Heal()
		n.PartitionOneWay("cli", "srv")
		before = f.served
		if _, err := f.call(time.Second); net.CodeOf(err) != net.DeadlineExceeded || f.served != before {
			t.Errorf("call with the request path cut: %v, served %d, want DeadlineExceeded and no service", err, f.served-before)
		}
		n.Heal()

		// An open, idle stream across a new partition breaks after the
		// dead-link timeout even though nothing was sent.
		ctx, cancel := clock.WithCancel(context.Background())
		defer cancel()
		s := f.openHold(ctx)
		if s == nil {
			return
		}
		n.Partition("srv", "cli")
		start := w.Clock().Mono()
		if _, err := s.Recv(); net.CodeOf(err) != net.Unavailable || w.Clock().Mono()-start != 10*time.Second {
			t.Errorf("idle stream across partition: %v after %v, want Unavailable after 10s", err, w.Clock().Mono()-start)
		}
		n.Heal()
	})
}

func TestBreakAndCrash(t *testing.T) {
	runSim(t, 2, simnet.Options{}, func(w *sim.World, n *simnet.Network) {
		f := newFixture(t, w, n)
		if f == nil {
			return
		}
		ctx, cancel := clock.WithCancel(context.Background())
		defer cancel()

		s := f.openHold(ctx)
		if s == nil {
			return
		}
		n.BreakConnections("srv")
		if _, err := s.Recv(); net.CodeOf(err) != net.Unavailable {
			t.Errorf("stream after BreakConnections: %v, want Unavailable", err)
		}
		if err := s.Send([]byte("x")); err != io.EOF {
			t.Errorf("Send on a broken stream: %v, want io.EOF", err)
		}
		if _, err := f.call(time.Second); err != nil {
			t.Errorf("call after BreakConnections (conn reconnects): %v", err)
		}

		s = f.openHold(ctx)
		if s == nil {
			return
		}
		oldSrv := n.Node("srv") // taken before the crash: an old incarnation's view
		n.CrashNode("srv")
		if _, err := s.Recv(); net.CodeOf(err) != net.Unavailable {
			t.Errorf("stream across crash: %v, want Unavailable", err)
		}
		if got := n.OpenCalls(); got != 0 {
			t.Errorf("%d calls open after the crash broke them all", got)
		}
		if _, err := f.call(time.Second); net.CodeOf(err) != net.Unavailable {
			t.Errorf("call to crashed node: %v, want Unavailable", err)
		}
		if got := n.Listeners(); len(got) != 0 {
			t.Errorf("listeners after crash: %v", got)
		}
		if _, err := oldSrv.Listen("srv:5454", f.mux); net.CodeOf(err) != net.Unavailable {
			t.Errorf("Listen from the crashed incarnation: %v, want Unavailable", err)
		}
		// The next incarnation listens again and the old client conn works.
		l, err := n.Endpoint("srv", w.Clock()).Listen("srv:5454", f.mux)
		if err != nil {
			t.Errorf("Listen after restart: %v", err)
			return
		}
		defer l.Close()
		if _, err := f.call(time.Second); err != nil {
			t.Errorf("call after restart: %v", err)
		}

		// A crashed client's conns are closed too.
		n.CrashNode("cli")
		if _, err := f.call(time.Second); net.CodeOf(err) != net.Unavailable {
			t.Errorf("call from crashed client incarnation: %v, want Unavailable", err)
		}
	})
}

func TestLatencyAndOrder(t *testing.T) {
	opts := simnet.Options{Latency: simnet.Latency{Base: time.Millisecond, Jitter: 50 * time.Millisecond, TailProb: 0.2, Tail: 200 * time.Millisecond}}
	runSim(t, 3, opts, func(w *sim.World, n *simnet.Network) {
		f := newFixture(t, w, n)
		if f == nil {
			return
		}
		n.SetLinkLatency("cli", "srv", simnet.Latency{Base: 300 * time.Millisecond})
		n.SetLinkLatency("srv", "cli", simnet.Latency{Base: 200 * time.Millisecond})
		if el, err := f.call(time.Second); err != nil || el != 500*time.Millisecond {
			t.Errorf("slow link call: %v after %v, want 500ms", err, el)
		}
		n.Heal()
		// Heavy jitter and tails must not reorder a stream.
		ctx, cancel := clock.WithTimeout(w.Clock(), context.Background(), time.Minute)
		defer cancel()
		s := f.openHold(ctx)
		if s == nil {
			return
		}
		const msgs = 40 // below the default window: all in flight at once
		for i := range msgs {
			if err := s.Send([]byte{byte(i)}); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
		for i := range msgs {
			b, err := s.Recv()
			if err != nil || len(b) != 1 || b[0] != byte(i) {
				t.Errorf("recv %d: %v %v (reordered?)", i, b, err)
				return
			}
		}
	})
}

func TestWindowBackPressure(t *testing.T) {
	runSim(t, 4, simnet.Options{StreamWindow: 4}, func(w *sim.World, n *simnet.Network) {
		mux := net.NewMux()
		started := false
		net.HandleStream(mux, mCount, func(ctx context.Context, s net.ServerStream) error {
			started = true
			return clock.Sleep(ctx, w.Clock(), time.Hour) // never reads
		})
		if _, err := n.Node("srv").Listen("srv:1", mux); err != nil {
			t.Errorf("Listen: %v", err)
			return
		}
		c, _ := n.Node("cli").Dial(context.Background(), "srv:1")
		ctx, cancel := clock.WithTimeout(w.Clock(), context.Background(), 5*time.Second)
		defer cancel()
		s, err := c.Stream(ctx, mCount)
		if err != nil {
			t.Errorf("Stream: %v", err)
			return
		}
		start := w.Clock().Mono()
		for i := range 4 {
			if err := s.Send([]byte{byte(i)}); err != nil {
				t.Errorf("send %d within window: %v", i, err)
			}
		}
		if w.Clock().Mono() != start {
			t.Errorf("sends within the window blocked")
		}
		if err := s.Send([]byte{9}); err != io.EOF || w.Clock().Mono()-start != 5*time.Second {
			t.Errorf("send beyond window: %v after %v, want blocked until the 5s deadline then io.EOF", err, w.Clock().Mono()-start)
		}
		if _, err := s.Recv(); net.CodeOf(err) != net.DeadlineExceeded {
			t.Errorf("Recv after deadline: %v, want DeadlineExceeded", err)
		}
		if !started {
			t.Errorf("handler never started")
		}
	})
}

func TestAddressesAndListen(t *testing.T) {
	runSim(t, 5, simnet.Options{}, func(w *sim.World, n *simnet.Network) {
		mux := net.NewMux()
		srv := n.Node("srv")
		for _, bad := range []string{"", "nohost", ":1", "h:x", "h:70000"} {
			if _, err := srv.Listen(bad, mux); net.CodeOf(err) != net.InvalidArgument {
				t.Errorf("Listen(%q): %v, want InvalidArgument", bad, err)
			}
			if _, err := srv.Dial(context.Background(), bad); net.CodeOf(err) != net.InvalidArgument {
				t.Errorf("Dial(%q): %v, want InvalidArgument", bad, err)
			}
		}
		a, err := srv.Listen("srv:0", mux)
		b, err2 := srv.Listen("srv:0", mux)
		if err != nil || err2 != nil || a.Addr() == b.Addr() {
			t.Errorf("port 0 twice: %v %v %v %v", a, b, err, err2)
			return
		}
		if _, err := n.Node("other").Listen(a.Addr(), mux); net.CodeOf(err) != net.AlreadyExists {
			t.Errorf("address in use: %v, want AlreadyExists", err)
		}
		a.Close()
		if _, err := n.Node("other").Listen(a.Addr(), mux); err != nil {
			t.Errorf("reuse after close: %v", err)
		}
	})
}

// workload is a small mixed run used to check determinism.
func workload(t *testing.T, w *sim.World, n *simnet.Network) {
	f := newFixture(t, w, n)
	if f == nil {
		return
	}
	wg := clock.NewWaitGroup(w.Clock())
	for i := range 6 {
		wg.Add(1)
		w.Clock().Go(context.Background(), fmt.Sprint("caller-", i), func(ctx context.Context) {
			defer wg.Done()
			for range 5 {
				f.call(time.Second)
			}
		})
	}
	ctx, cancel := clock.WithTimeout(w.Clock(), context.Background(), time.Minute)
	defer cancel()
	if err := wg.Wait(ctx); err != nil {
		t.Errorf("workload: %v", err)
	}
	// A stream abandoned by cancelling its context is retired too.
	sctx, scancel := clock.WithCancel(context.Background())
	if s := f.openHold(sctx); s == nil {
		return
	}
	scancel()
	if err := clock.Sleep(ctx, w.Clock(), time.Second); err != nil {
		t.Errorf("sleep: %v", err)
	}
	if got := n.OpenCalls(); got != 0 {
		t.Errorf("%d calls still open after the workload", got)
	}
}

func TestDeterminism(t *testing.T) {
	var delivered int
	opts := simnet.Options{OnDeliver: func(from, to, method string, n int) { delivered++ }}
	h1 := runSim(t, 42, opts, func(w *sim.World, n *simnet.Network) { workload(t, w, n) })
	if delivered < 6*5*2 {
		t.Errorf("OnDeliver saw %d messages, want at least %d", delivered, 6*5*2)
	}
	h2 := runSim(t, 42, opts, func(w *sim.World, n *simnet.Network) { workload(t, w, n) })
	if h1 != h2 {
		t.Errorf("same seed, different hashes: %x vs %x", h1, h2)
	}
	h3 := runSim(t, 43, opts, func(w *sim.World, n *simnet.Network) { workload(t, w, n) })
	if h3 == h1 {
		t.Errorf("different seeds gave the same hash %x", h1)
	}
}

// BenchmarkUnarySim measures the wall-clock cost of one simulated unary
// call (scheduler hand-offs, timers, copies) inside one world.
func BenchmarkUnarySim(b *testing.B) {
	w := sim.New(sim.Options{Seed: 1})
	n := simnet.New(w.Clock(), w.NewRand("net"), simnet.Options{})
	err := w.Run(func(w *sim.World) error {
		mux := net.NewMux()
		net.HandleUnaryBytes(mux, mEcho, func(ctx context.Context, p []byte) ([]byte, error) { return p, nil })
		if _, err := n.Node("srv").Listen("srv:1", mux); err != nil {
			return err
		}
		c, err := n.Node("cli").Dial(context.Background(), "srv:1")
		if err != nil {
			return err
		}
		req := make([]byte, 128)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Call(context.Background(), mEcho, req); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// TestRouterOverSeam runs the control-plane client checks over the
// simulated network: the same routes and answers as over real HTTP.
func TestRouterOverSeam(t *testing.T) {
	w := sim.New(sim.Options{Seed: 1})
	err := w.Run(func(w *sim.World) error {
		srv := w.AddNode("srv", func(node.Env) error { return nil })
		cli := w.AddNode("cli", func(node.Env) error { return nil })
		m := net.NewMux()
		nettest.HTTPRouter().Register(m)
		l, err := srv.Env().Net.Listen("srv:80", m)
		if err != nil {
			return err
		}
		defer l.Close()
		c, err := cli.Env().Net.Dial(context.Background(), "srv:80")
		if err != nil {
			return err
		}
		nettest.RunHTTP(t, context.Background(), net.SeamHTTP{Conn: c})
		// DialHTTP dials per request: the same answers.
		nettest.RunHTTP(t, context.Background(), net.DialHTTP{Net: cli.Env().Net, Addr: "srv:80"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCutAndSlowLinkHolds: cuts and slow links that end on their own are
// counted per direction, so one fault's release leaves the others (and a
// Partition) in force; a release is idempotent and void after Heal.
func TestCutAndSlowLinkHolds(t *testing.T) {
	runSim(t, 1, simnet.Options{Latency: simnet.Latency{Base: time.Millisecond}}, func(w *sim.World, n *simnet.Network) {
		f := newFixture(t, w, n)
		if f == nil {
			return
		}
		cut := func(want bool, what string) {
			t.Helper()
			if _, err := f.call(100 * time.Millisecond); (err != nil) != want {
				t.Errorf("%s: call error %v, want cut=%v", what, err, want)
			}
		}
		r1 := n.Cut("cli", "srv")
		r2 := n.Cut("cli", "srv")
		r1()
		r1() // idempotent: must not release r2's hold
		cut(true, "one of two cuts released")
		r2()
		cut(false, "both cuts released")

		n.PartitionOneWay("cli", "srv")
		r3 := n.Cut("cli", "srv")
		r3()
		cut(true, "a cut released over a Partition")
		n.Heal()
		cut(false, "after Heal")
		r4 := n.Cut("cli", "srv")
		n.Heal()
		r5 := n.Cut("cli", "srv")
		r4() // from before the Heal: void
		cut(true, "a release from before Heal")
		r5()

		slow := func(want time.Duration, what string) {
			t.Helper()
			if el, err := f.call(time.Second); err != nil || el != want {
				t.Errorf("%s: call took %v (%v), want %v", what, el, err, want)
			}
		}
		n.SetLinkLatency("cli", "srv", simnet.Latency{Base: 10 * time.Millisecond})
		s1 := n.SlowLink("cli", "srv", simnet.Latency{Base: 100 * time.Millisecond})
		s2 := n.SlowLink("cli", "srv", simnet.Latency{Base: 200 * time.Millisecond})
		slow(201*time.Millisecond, "two slow links: the latest applies")
		s2()
		slow(101*time.Millisecond, "the latest released")
		s1()
		s1()
		slow(11*time.Millisecond, "both released: the override applies")
		n.Heal()
		slow(2*time.Millisecond, "after Heal")
	})
}
