package computehook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

var (
	// ErrFatal: the hook refused the notification (404 or another 4xx).
	// It is fatal for this round: not retried; a later round may succeed.
	ErrFatal = errors.New("computehook: fatal")
	// ErrGaveUp: every attempt failed with a retryable error.
	ErrGaveUp = errors.New("computehook: gave up after retries")
	// ErrConfig: a Config field is out of range.
	ErrConfig = errors.New("computehook: invalid config")
)

// Defaults and limits.
const (
	// DefaultTimeout bounds one attempt.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxRetries is how many times a notification is retried after
	// its first attempt.
	DefaultMaxRetries = 10
	// DefaultBusyWait is the pause after a 429.
	DefaultBusyWait = 5 * time.Second
	// DefaultRetryBackoff is the first back-off after a retryable failure;
	// it doubles per retry.
	DefaultRetryBackoff = 100 * time.Millisecond
	// MaxRetryBackoff caps the doubling back-off (unless RetryBackoff
	// itself is larger).
	MaxRetryBackoff = 3 * time.Second
)

// Config tunes a Notifier. Zero fields take the defaults.
type Config struct {
	// Timeout bounds each attempt (default DefaultTimeout).
	Timeout time.Duration
	// MaxRetries bounds the retries after the first attempt (default
	// DefaultMaxRetries).
	MaxRetries int
	// BusyWait is the wait after a 429 before retrying (default
	// DefaultBusyWait).
	BusyWait time.Duration
	// RetryBackoff is the first back-off after a 5xx, an unreachable hook
	// or a timeout; it doubles up to MaxRetryBackoff (default
	// DefaultRetryBackoff).
	RetryBackoff time.Duration
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.BusyWait == 0 {
		c.BusyWait = DefaultBusyWait
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	return c
}

// Validate refuses negative fields.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("%w: Timeout %v is negative", ErrConfig, c.Timeout)
	case c.MaxRetries < 0:
		return fmt.Errorf("%w: MaxRetries %d is negative", ErrConfig, c.MaxRetries)
	case c.BusyWait < 0:
		return fmt.Errorf("%w: BusyWait %v is negative", ErrConfig, c.BusyWait)
	case c.RetryBackoff < 0:
		return fmt.Errorf("%w: RetryBackoff %v is negative", ErrConfig, c.RetryBackoff)
	}
	return nil
}

// backoff is the wait before retry n (0-based) after a retryable failure.
func (c Config) backoff(n int) time.Duration {
	limit := max(MaxRetryBackoff, c.RetryBackoff)
	d := c.RetryBackoff
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Notifier sends notify-attach requests. Safe for concurrent tasks.
type Notifier struct {
	clk     clock.Clock
	log     *slog.Logger
	hc      net.HTTPClient
	token   string
	cfg     Config
	metrics *metrics

	mu      sync.Mutex // guards tenants; never held across a wait
	tenants map[shard.TenantID]*tenantState
}

// tenantState serializes one tenant's sends and remembers the last one that
// succeeded.
type tenantState struct {
	send *clock.Mutex
	last *storconapi.NotifyAttachRequest // guarded by send; nil after a failure
}

// New returns a Notifier sending to hc (requests go to
// storconapi.NotifyAttachPath) with token as the bearer token ("" = none).
// Its metrics are registered on reg (nil = not registered); metrics already
// registered there by an earlier Notifier are shared.
func New(clk clock.Clock, log *slog.Logger, reg prometheus.Registerer, hc net.HTTPClient, token string, cfg Config) (*Notifier, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if hc == nil {
		return nil, fmt.Errorf("%w: no HTTP client", ErrConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Notifier{clk: clk, log: log, hc: hc, token: token, cfg: cfg, metrics: m,
		tenants: make(map[shard.TenantID]*tenantState)}, nil
}

func (n *Notifier) state(t shard.TenantID) *tenantState {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.tenants[t]
	if !ok {
		st = &tenantState{send: clock.NewMutex(n.clk)}
		n.tenants[t] = st
	}
	return st
}

// Forget drops what was last sent for t (the tenant was deleted): the next
// Notify for t is sent even if identical to the last one.
func (n *Notifier) Forget(t shard.TenantID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.tenants, t)
}

// Notify sends req unless an identical request for req.TenantID already
// succeeded (then it returns nil at once). 429 waits BusyWait and retries;
// 5xx, an unreachable hook and timeouts retry with back-off, up to
// MaxRetries retries in all (then the error wraps ErrGaveUp); 404 and other
// 4xx return an error wrapping ErrFatal at once. If ctx ends first, its
// error is returned.
func (n *Notifier) Notify(ctx context.Context, req storconapi.NotifyAttachRequest) error {
	req = canonical(req)
	st := n.state(req.TenantID)
	if err := st.send.Lock(ctx); err != nil {
		return err
	}
	defer st.send.Unlock()
	if st.last != nil && equal(*st.last, req) {
		n.metrics.notify.WithLabelValues("unchanged").Inc()
		return nil
	}
	// Whatever happens now, compute's state is no longer known to match an
	// earlier success.
	st.last = nil
	err := n.send(ctx, req)
	switch {
	case err == nil:
		st.last = &req
		n.metrics.notify.WithLabelValues("sent").Inc()
	case errors.Is(err, ErrFatal):
		n.metrics.notify.WithLabelValues("fatal").Inc()
	default:
		n.metrics.notify.WithLabelValues("failed").Inc()
	}
	return err
}

// class is what an attempt's outcome calls for.
type class int

const (
	classOK class = iota
	classBusy
	classRetry
	classFatal
)

// send makes the attempts.
func (n *Notifier) send(ctx context.Context, req storconapi.NotifyAttachRequest) error {
	hreq := &net.HTTPRequest{Method: "PUT", Path: storconapi.NotifyAttachPath}
	if n.token != "" {
		hreq.Authorization = "Bearer " + n.token
	}
	var last error
	for attempt := 0; ; attempt++ {
		actx, cancel := clock.WithTimeout(n.clk, ctx, n.cfg.Timeout)
		start := n.clk.Mono()
		status, err := n.hc.Do(actx, hreq, req, nil)
		cancel()
		n.metrics.latency.Observe((n.clk.Mono() - start).Seconds())
		if err != nil && ctx.Err() != nil {
			// The caller gave up (or the controller is stopping): not the
			// hook's fault, so not a round's outcome either.
			return fmt.Errorf("computehook: notify %s: %w", req.TenantID, ctx.Err())
		}
		c, label := classify(status, err)
		n.metrics.requests.WithLabelValues(label).Inc()
		switch c {
		case classOK:
			n.log.Debug("computehook: notified", "tenant_id", req.TenantID, "shards", len(req.Shards), "attempts", attempt+1)
			return nil
		case classFatal:
			n.log.Warn("computehook: notification refused", "tenant_id", req.TenantID, "status", label, "err", err)
			return fmt.Errorf("%w: notify %s: %s: %w", ErrFatal, req.TenantID, label, err)
		}
		last = err
		if attempt >= n.cfg.MaxRetries {
			n.log.Warn("computehook: giving up", "tenant_id", req.TenantID, "attempts", attempt+1, "err", err)
			return fmt.Errorf("%w: notify %s: %d attempts, last %s: %w", ErrGaveUp, req.TenantID, attempt+1, label, last)
		}
		wait := n.cfg.backoff(attempt)
		if c == classBusy {
			wait = n.cfg.BusyWait
		}
		n.log.Info("computehook: retrying", "tenant_id", req.TenantID, "status", label, "wait", wait, "err", err)
		if err := clock.Sleep(ctx, n.clk, wait); err != nil {
			return fmt.Errorf("computehook: notify %s: %w", req.TenantID, err)
		}
	}
}

// classify maps an attempt's outcome to what to do and a metric label: the
// HTTP status when the client reports one, the error's code otherwise.
func classify(status int, err error) (class, string) {
	if err == nil {
		return classOK, "ok"
	}
	if status != 0 {
		label := strconv.Itoa(status)
		switch {
		case status == 429:
			return classBusy, label
		case status == 408, status >= 500:
			return classRetry, label
		default: // 404 and the other 4xx (and anything unexpected)
			return classFatal, label
		}
	}
	code := net.CodeOf(err)
	switch code {
	case net.ResourceExhausted:
		return classBusy, code.String()
	case net.Unavailable, net.DeadlineExceeded, net.Canceled, net.Aborted, net.Internal, net.Unknown, net.DataLoss:
		return classRetry, code.String()
	}
	return classFatal, code.String()
}

// canonical copies req with its shards in shard-number order, so that the
// dedupe compares content and the remembered request shares nothing with
// the caller's.
func canonical(req storconapi.NotifyAttachRequest) storconapi.NotifyAttachRequest {
	req.Shards = slices.Clone(req.Shards)
	slices.SortFunc(req.Shards, func(a, b storconapi.NotifyAttachShard) int {
		return int(a.ShardNumber) - int(b.ShardNumber)
	})
	if req.PreferredAZ != nil {
		az := *req.PreferredAZ
		req.PreferredAZ = &az
	}
	if req.StripeSize != nil {
		s := *req.StripeSize
		req.StripeSize = &s
	}
	return req
}

func equal(a, b storconapi.NotifyAttachRequest) bool {
	return a.TenantID == b.TenantID &&
		equalPtr(a.PreferredAZ, b.PreferredAZ) &&
		equalPtr(a.StripeSize, b.StripeSize) &&
		slices.Equal(a.Shards, b.Shards)
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

type metrics struct {
	requests *prometheus.CounterVec // per attempt, by status
	notify   *prometheus.CounterVec // per Notify, by outcome
	latency  prometheus.Histogram   // per attempt
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storage_controller_compute_hook_requests_total",
			Help: "notify-attach attempts, by HTTP status (or error code when there is none).",
		}, []string{"status"}),
		notify: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storage_controller_compute_hook_notify_total",
			Help: "Notifications, by outcome: sent, unchanged (identical to the last success, not sent), fatal (4xx), failed (retries exhausted or cancelled).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "storage_controller_compute_hook_request_latency_seconds",
			Help:    "Latency of one notify-attach attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.notify, err = register(reg, m.notify); err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg, or returns the collector already registered
// under its name (a controller restarted in the same process shares them).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("computehook: register metrics: %w", err)
	}
	return c, nil
}
