package computehook

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim"
)

// step is one scripted answer of fakeHook.
type step struct {
	status int      // HTTP status the client reports (0: none, as over the seam)
	code   net.Code // error code when status is 0 (OK = success)
	hang   bool     // block until the attempt's context ends
}

// fakeHook is a net.HTTPClient answering from a script; past the script's
// end it succeeds. It records every attempt's start time and request.
type fakeHook struct {
	clk    clock.Clock
	script []step

	mu       sync.Mutex
	attempts []time.Duration
	reqs     []storconapi.NotifyAttachRequest
	auth     []string
}

func (f *fakeHook) Do(ctx context.Context, r *net.HTTPRequest, in, out any) (int, error) {
	f.mu.Lock()
	n := len(f.attempts)
	f.attempts = append(f.attempts, f.clk.Mono())
	f.reqs = append(f.reqs, in.(storconapi.NotifyAttachRequest))
	f.auth = append(f.auth, r.Authorization)
	f.mu.Unlock()
	if r.Method != "PUT" || r.Path != storconapi.NotifyAttachPath {
		return 0, net.Errorf(net.NotFound, "fake: %s %s", r.Method, r.Path)
	}
	if n >= len(f.script) {
		return 200, nil
	}
	s := f.script[n]
	switch {
	case s.hang:
		// Sleep returns only when the attempt's deadline ends it.
		err := clock.Sleep(ctx, f.clk, 24*time.Hour)
		return 0, net.ToStatus(err)
	case s.status >= 200 && s.status < 300:
		return s.status, nil
	case s.status != 0:
		return s.status, net.Errorf(codeForStatus(s.status), "fake: HTTP %d", s.status)
	case s.code != net.OK:
		return 0, net.Errorf(s.code, "fake: %s", s.code)
	}
	return 200, nil
}

func (f *fakeHook) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.attempts)
}

// gaps returns the times between successive attempts.
func (f *fakeHook) gaps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var g []time.Duration
	for i := 1; i < len(f.attempts); i++ {
		g = append(g, f.attempts[i]-f.attempts[i-1])
	}
	return g
}

// inSim runs body as the main task of a one-seed simulated world, so waits
// of seconds take no wall time.
func inSim(t *testing.T, body func(clk clock.Clock) error) {
	t.Helper()
	w := sim.New(sim.Options{Seed: 1, MaxVirtualTime: 24 * time.Hour})
	if err := w.Run(func(w *sim.World) error { return body(w.Clock()) }); err != nil {
		t.Fatal(err)
	}
}

var tenantA = shard.TenantID{0xaa, 1}

func stripe(n uint32) *uint32 { return &n }

func req(t shard.TenantID, nodes ...uint64) storconapi.NotifyAttachRequest {
	r := storconapi.NotifyAttachRequest{TenantID: t}
	for i, n := range nodes {
		r.Shards = append(r.Shards, storconapi.NotifyAttachShard{NodeID: n, ShardNumber: shard.ShardNumber(i)})
	}
	if len(nodes) > 1 {
		r.StripeSize = stripe(2048)
	}
	return r
}

func TestNotifyStatusClasses(t *testing.T) {
	const ms = time.Millisecond
	cfg := Config{Timeout: 2 * time.Second, MaxRetries: 4, BusyWait: 5 * time.Second, RetryBackoff: 100 * ms}
	for _, tc := range []struct {
		name     string
		script   []step
		wantErr  error // nil: success
		attempts int
		gaps     []time.Duration
	}{
		{"ok", nil, nil, 1, nil},
		{"201 is success", []step{{status: 201}}, nil, 1, nil},
		{"429 waits BusyWait", []step{{status: 429}, {status: 429}}, nil, 3, []time.Duration{5 * time.Second, 5 * time.Second}},
		{"429 over the seam", []step{{code: net.ResourceExhausted}}, nil, 2, []time.Duration{5 * time.Second}},
		{"5xx backs off, doubling", []step{{status: 500}, {status: 503}, {status: 502}}, nil, 4, []time.Duration{100 * ms, 200 * ms, 400 * ms}},
		{"unavailable over the seam", []step{{code: net.Unavailable}, {code: net.Internal}}, nil, 3, []time.Duration{100 * ms, 200 * ms}},
		{"408 retries", []step{{status: 408}}, nil, 2, []time.Duration{100 * ms}},
		{"timeout retries", []step{{hang: true}}, nil, 2, []time.Duration{2*time.Second + 100*ms}},
		{"404 is fatal", []step{{status: 404}}, ErrFatal, 1, nil},
		{"400 is fatal", []step{{status: 400}}, ErrFatal, 1, nil},
		{"401 is fatal", []step{{status: 401}}, ErrFatal, 1, nil},
		{"403 is fatal", []step{{status: 403}}, ErrFatal, 1, nil},
		{"not found over the seam is fatal", []step{{code: net.NotFound}}, ErrFatal, 1, nil},
		{"fatal after a retry", []step{{status: 503}, {status: 404}}, ErrFatal, 2, []time.Duration{100 * ms}},
		{"5xx exhausts retries", []step{{status: 500}, {status: 500}, {status: 500}, {status: 500}, {status: 500}, {status: 500}},
			ErrGaveUp, 5, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms}},
		{"timeouts exhaust retries", []step{{hang: true}, {hang: true}, {hang: true}, {hang: true}, {hang: true}},
			ErrGaveUp, 5, []time.Duration{2100 * ms, 2200 * ms, 2400 * ms, 2800 * ms}},
		{"429 counts against retries", []step{{status: 429}, {status: 429}, {status: 429}, {status: 429}, {status: 429}},
			ErrGaveUp, 5, []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inSim(t, func(clk clock.Clock) error {
				hook := &fakeHook{clk: clk, script: tc.script}
				n, err := New(clk, nil, prometheus.NewRegistry(), hook, "tok", cfg)
				if err != nil {
					return err
				}
				err = n.Notify(context.Background(), req(tenantA, 1))
				if tc.wantErr == nil && err != nil {
					t.Errorf("Notify: %v, want success", err)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("Notify: %v, want %v", err, tc.wantErr)
				}
				if got := hook.count(); got != tc.attempts {
					t.Errorf("%d attempts, want %d", got, tc.attempts)
				}
				if g := hook.gaps(); !equalDurations(g, tc.gaps) {
					t.Errorf("gaps between attempts %v, want %v", g, tc.gaps)
				}
				for _, a := range hook.auth {
					if a != "Bearer tok" {
						t.Errorf("Authorization %q, want Bearer tok", a)
					}
				}
				return nil
			})
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBackoffIsCapped(t *testing.T) {
	c := Config{RetryBackoff: 100 * time.Millisecond}.withDefaults()
	for n, want := range []time.Duration{100, 200, 400, 800, 1600, 3000, 3000} {
		if got := c.backoff(n); got != want*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want*time.Millisecond)
		}
	}
	big := Config{RetryBackoff: 10 * time.Second}.withDefaults()
	if got := big.backoff(3); got != 10*time.Second {
		t.Errorf("a RetryBackoff above the cap: backoff(3) = %v, want 10s", got)
	}
}

func TestNotifyDedupe(t *testing.T) {
	inSim(t, func(clk clock.Clock) error {
		hook := &fakeHook{clk: clk}
		n, err := New(clk, nil, nil, hook, "", Config{MaxRetries: 1})
		if err != nil {
			return err
		}
		ctx := context.Background()
		two := req(tenantA, 1, 2)
		notify := func(what string, r storconapi.NotifyAttachRequest, wantAttempts int) {
			t.Helper()
			if err := n.Notify(ctx, r); err != nil {
				t.Errorf("%s: %v", what, err)
			}
			if got := hook.count(); got != wantAttempts {
				t.Errorf("%s: %d attempts so far, want %d", what, got, wantAttempts)
			}
		}
		notify("first", two, 1)
		notify("identical", req(tenantA, 1, 2), 1)
		reordered := req(tenantA, 1, 2)
		reordered.Shards[0], reordered.Shards[1] = reordered.Shards[1], reordered.Shards[0]
		notify("same shards in another order", reordered, 1)
		// The caller's slice is not aliased: changing it after the call
		// does not change what was recorded.
		two.Shards[0].NodeID = 9
		notify("caller's slice changed, request differs", two, 2)
		notify("moved back", req(tenantA, 1, 2), 3)
		az := "az-1"
		withAZ := req(tenantA, 1, 2)
		withAZ.PreferredAZ = &az
		notify("preferred AZ differs", withAZ, 4)
		noStripe := req(tenantA, 1, 2)
		noStripe.StripeSize = nil
		notify("stripe size differs", noStripe, 5)
		notify("another tenant", req(shard.TenantID{0xbb}, 1, 2), 6)
		n.Forget(tenantA)
		notify("after Forget", noStripe, 7)
		notify("identical after Forget's resend", noStripe, 7)

		// A failure forgets the last success: the same request is resent.
		hook.mu.Lock()
		hook.script = make([]step, 7, 9)
		hook.script = append(hook.script, step{status: 500}, step{status: 500})
		hook.mu.Unlock()
		if err := n.Notify(ctx, req(tenantA, 3, 4)); !errors.Is(err, ErrGaveUp) {
			t.Errorf("failing notify: %v, want ErrGaveUp", err)
		}
		notify("previous success after a failure", noStripe, 10)
		return nil
	})
}

// A notify for a tenant waits for one in flight for the same tenant, then
// finds it identical and does not send; other tenants do not wait.
func TestNotifySerializedPerTenant(t *testing.T) {
	inSim(t, func(clk clock.Clock) error {
		hook := &fakeHook{clk: clk, script: []step{{hang: true}}}
		n, err := New(clk, nil, nil, hook, "", Config{Timeout: time.Second})
		if err != nil {
			return err
		}
		ctx := context.Background()
		wg := clock.NewWaitGroup(clk)
		var mu sync.Mutex
		done := map[string]time.Duration{}
		run := func(name string, r storconapi.NotifyAttachRequest) {
			wg.Add(1)
			clk.Go(ctx, name, func(ctx context.Context) {
				defer wg.Done()
				if err := n.Notify(ctx, r); err != nil {
					t.Errorf("%s: %v", name, err)
				}
				mu.Lock()
				done[name] = clk.Mono()
				mu.Unlock()
			})
		}
		start := clk.Mono()
		run("a1", req(tenantA, 1))
		if err := clock.Sleep(ctx, clk, 10*time.Millisecond); err != nil {
			return err
		}
		run("a2", req(tenantA, 1))
		run("b", req(shard.TenantID{0xbb}, 1))
		if err := wg.Wait(ctx); err != nil {
			return err
		}
		// a1: a hung attempt (1s), back-off, success; a2 dedupes; b ran
		// alongside.
		if got := hook.count(); got != 3 {
			t.Errorf("%d attempts, want 3 (a1 twice, b once)", got)
		}
		if done["b"]-start >= time.Second {
			t.Errorf("b finished at %v: it waited for tenant A's send", done["b"]-start)
		}
		if done["a2"] < done["a1"] {
			t.Errorf("a2 finished at %v before a1 at %v", done["a2"], done["a1"])
		}
		return nil
	})
}

// A caller that gives up (its context ends) gets its context's error, not
// a round's outcome.
func TestNotifyCallerCancels(t *testing.T) {
	inSim(t, func(clk clock.Clock) error {
		hook := &fakeHook{clk: clk, script: []step{{status: 429}, {status: 429}}}
		n, err := New(clk, nil, nil, hook, "", Config{})
		if err != nil {
			return err
		}
		ctx, cancel := clock.WithTimeout(clk, context.Background(), 7*time.Second)
		defer cancel()
		err = n.Notify(ctx, req(tenantA, 1))
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrGaveUp) || errors.Is(err, ErrFatal) {
			t.Errorf("Notify: %v, want the caller's deadline", err)
		}
		if got := hook.count(); got != 2 {
			t.Errorf("%d attempts, want 2 (at 0 s and 5 s)", got)
		}
		return nil
	})
}

func TestNotifyMetrics(t *testing.T) {
	inSim(t, func(clk clock.Clock) error {
		reg := prometheus.NewRegistry()
		hook := &fakeHook{clk: clk, script: []step{{status: 503}, {}, {status: 404}}}
		n, err := New(clk, nil, reg, hook, "", Config{})
		if err != nil {
			return err
		}
		ctx := context.Background()
		_ = n.Notify(ctx, req(tenantA, 1))
		_ = n.Notify(ctx, req(tenantA, 1))
		_ = n.Notify(ctx, req(tenantA, 2))
		// A second Notifier on the same registry (a restarted controller)
		// shares the metrics instead of failing.
		if _, err := New(clk, nil, reg, hook, "", Config{}); err != nil {
			t.Errorf("second Notifier on one registry: %v", err)
		}
		for _, tc := range []struct {
			c    prometheus.Counter
			name string
		}{
			{n.metrics.requests.WithLabelValues("503"), "requests 503"},
			{n.metrics.requests.WithLabelValues("ok"), "requests ok"},
			{n.metrics.requests.WithLabelValues("404"), "requests 404"},
			{n.metrics.notify.WithLabelValues("sent"), "notify sent"},
			{n.metrics.notify.WithLabelValues("unchanged"), "notify unchanged"},
			{n.metrics.notify.WithLabelValues("fatal"), "notify fatal"},
		} {
			if got := counterValue(t, tc.c); got != 1 {
				t.Errorf("%s = %v, want 1", tc.name, got)
			}
		}
		mfs, err := reg.Gather()
		if err != nil {
			return err
		}
		series := map[string]int{}
		for _, mf := range mfs {
			series[mf.GetName()] = len(mf.GetMetric())
			if mf.GetName() == "storage_controller_compute_hook_request_latency_seconds" {
				if c := mf.GetMetric()[0].GetHistogram().GetSampleCount(); c != 3 {
					t.Errorf("latency histogram has %d samples, want 3 (one per attempt)", c)
				}
			}
		}
		if series["storage_controller_compute_hook_requests_total"] != 3 || series["storage_controller_compute_hook_notify_total"] != 3 {
			t.Errorf("registry series: %v", series)
		}
		return nil
	})
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	for _, c := range []Config{
		{Timeout: -1}, {MaxRetries: -1}, {BusyWait: -1}, {RetryBackoff: -1},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", c, err)
		}
		if _, err := New(clock.NewReal(), nil, nil, &fakeHook{}, "", c); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v): %v, want ErrConfig", c, err)
		}
	}
	if _, err := New(clock.NewReal(), nil, nil, nil, "", Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("New without a client: %v, want ErrConfig", err)
	}
}

// routerClient calls a Router in-process, as the seam would (no HTTP
// status on errors).
type routerClient struct{ rt *net.Router }

func (c routerClient) Do(ctx context.Context, r *net.HTTPRequest, in, out any) (int, error) {
	hr := *r
	if in != nil {
		b, err := net.MarshalJSON(in)
		if err != nil {
			return 0, err
		}
		hr.Body = b
	}
	resp, err := c.rt.Serve(ctx, &hr)
	if err != nil {
		return 0, net.ToStatus(err)
	}
	return resp.Status, nil
}

func TestReceiver(t *testing.T) {
	inSim(t, func(clk clock.Clock) error {
		rcv := NewReceiver("secret")
		rt := net.NewRouter()
		rcv.Register(rt)
		ctx := context.Background()

		bad, err := New(clk, nil, nil, routerClient{rt}, "wrong", Config{})
		if err != nil {
			return err
		}
		if err := bad.Notify(ctx, req(tenantA, 1)); !errors.Is(err, ErrFatal) || net.CodeOf(err) != net.Unauthenticated {
			t.Errorf("wrong token: %v (code %v), want ErrFatal and Unauthenticated", err, net.CodeOf(err))
		}
		if rcv.Count() != 0 || rcv.Requests() != 1 {
			t.Errorf("after a refused request: count %d requests %d, want 0 and 1", rcv.Count(), rcv.Requests())
		}

		n, err := New(clk, nil, nil, routerClient{rt}, "secret", Config{})
		if err != nil {
			return err
		}
		rcv.FailNext(2, 503)
		if err := n.Notify(ctx, req(tenantA, 1, 2)); err != nil {
			t.Errorf("after two 503s: %v", err)
		}
		if rcv.Count() != 1 || rcv.Requests() != 4 {
			t.Errorf("count %d requests %d, want 1 and 4", rcv.Count(), rcv.Requests())
		}
		got, ok := rcv.Last(tenantA)
		if !ok || !equal(got, canonical(req(tenantA, 1, 2))) {
			t.Errorf("Last = %+v %v", got, ok)
		}
		rcv.FailNext(1, 429)
		start := clk.Mono()
		if err := n.Notify(ctx, req(tenantA, 2, 1)); err != nil {
			t.Errorf("after a 429: %v", err)
		}
		if waited := clk.Mono() - start; waited != DefaultBusyWait {
			t.Errorf("429 over the seam waited %v, want %v", waited, DefaultBusyWait)
		}
		rcv.FailNext(1, 404)
		if err := n.Notify(ctx, req(tenantA, 3, 1)); !errors.Is(err, ErrFatal) {
			t.Errorf("404: %v, want ErrFatal", err)
		}
		if got, _ := rcv.Last(tenantA); got.Shards[0].NodeID != 2 {
			t.Errorf("a refused notification replaced the last one: %+v", got)
		}
		if _, ok := rcv.Last(shard.TenantID{0xcc}); ok {
			t.Error("Last of an unknown tenant")
		}
		return nil
	})
}

func TestCodeForStatus(t *testing.T) {
	for status, want := range map[int]net.Code{
		400: net.InvalidArgument, 401: net.Unauthenticated, 403: net.PermissionDenied, 404: net.NotFound,
		410: net.InvalidArgument, 429: net.ResourceExhausted, 500: net.Internal, 502: net.Unavailable,
		503: net.Unavailable, 504: net.DeadlineExceeded,
	} {
		if got := codeForStatus(status); got != want {
			t.Errorf("codeForStatus(%d) = %v, want %v", status, got, want)
		}
		// Each code classifies over the seam as its status does over HTTP.
		cs, _ := classify(status, errors.New("x"))
		cc, _ := classify(0, net.Errorf(want, "x"))
		if cs != cc {
			t.Errorf("status %d classifies as %v over HTTP and %v over the seam", status, cs, cc)
		}
	}
}
