package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
	"github.com/stratadb/strata/nodes/node"
)

// Config configures a Broker.
type Config struct {
	// ListenAddr is where the broker serves.
	ListenAddr string
	// EntryTTL drops entries not republished for this long. Default 30s.
	EntryTTL time.Duration
	// MaxEntries bounds the table (safekeepers × timelines); a publish of a
	// new entry beyond it is refused (ErrFull). Default 100000.
	MaxEntries int
}

// Defaults of Config.
const (
	DefaultEntryTTL   = 30 * time.Second
	DefaultMaxEntries = 100000
)

// ErrConfig is wrapped by every error Config.Validate returns.
var ErrConfig = errors.New("broker: invalid config")

// withDefaults fills zero fields with the defaults.
func (c Config) withDefaults() Config {
	if c.EntryTTL == 0 {
		c.EntryTTL = DefaultEntryTTL
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	return c
}

// Validate checks the configuration with the defaults applied (to its own
// copy: c is not changed).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.ListenAddr == "":
		return fmt.Errorf("%w: ListenAddr is required", ErrConfig)
	case c.EntryTTL < 0:
		return fmt.Errorf("%w: EntryTTL %v is negative", ErrConfig, c.EntryTTL)
	case c.MaxEntries < 0:
		return fmt.Errorf("%w: MaxEntries %d is negative", ErrConfig, c.MaxEntries)
	}
	return nil
}

// Errors of the broker's domain code; the handlers map them to net codes
// once (statusOf).
var (
	// ErrFull reports a table at MaxEntries (ResourceExhausted).
	ErrFull = errors.New("broker: table full")
	// ErrMissingID reports a published entry without its safekeeper,
	// tenant or timeline id (InvalidArgument).
	ErrMissingID = errors.New("broker: safekeeper, tenant and timeline ids are required")
)

// statusOf is the handlers' edge: a domain error becomes a *net.Status
// keeping the error as its in-process cause.
func statusOf(err error) error {
	var st *net.Status
	switch {
	case err == nil:
		return nil
	case errors.As(err, &st):
		return err // a stream's Send or Recv failed: already a Status
	case errors.Is(err, ErrMissingID):
		return net.Wrap(net.InvalidArgument, err)
	case errors.Is(err, ErrFull):
		return net.Wrap(net.ResourceExhausted, err)
	case errors.Is(err, context.DeadlineExceeded):
		return net.Wrap(net.DeadlineExceeded, err)
	case errors.Is(err, context.Canceled):
		return net.Wrap(net.Canceled, err)
	}
	return net.Wrap(net.Internal, err)
}

// entryKey is "tenant/timeline/safekeeper": a string, so the table can be
// walked in sorted order.
type entryKey string

func keyOf(i *brokerapi.SafekeeperTimelineInfo) entryKey {
	return entryKey(i.TenantId + "/" + i.TimelineId + "/" + i.SafekeeperId)
}

type entry struct {
	info     *brokerapi.SafekeeperTimelineInfo
	received time.Duration // Mono
	version  uint64
}

// Broker is the service.
type Broker struct {
	env node.Env
	cfg Config
	log *slog.Logger

	// mu guards the table; held only for map operations.
	mu      *clock.Mutex
	cond    *clock.Cond
	entries map[entryKey]*entry
	version uint64

	lisMu    sync.Mutex
	listener net.Listener

	published prometheus.Counter
}

// New builds a broker; Start serves it.
func New(env node.Env, cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Broker{env: env, cfg: cfg, log: env.Log.With("component", "broker"), entries: map[entryKey]*entry{}}
	b.mu = clock.NewMutex(env.Clock)
	b.cond = clock.NewCond(b.mu)
	b.published = prometheus.NewCounter(prometheus.CounterOpts{Name: "broker_publish_total", Help: "Timeline states published."})
	if env.Metrics != nil {
		env.Metrics.MustRegister(b.published)
	}
	return b, nil
}

// Mux returns the broker's handlers (for daemons that share a listener).
func (b *Broker) Mux() *net.Mux {
	m := net.NewMux()
	net.HandleUnary(m, brokerapi.MethodPublish, func(ctx context.Context, in *brokerapi.SafekeeperTimelineInfo) (*brokerapi.PublishResponse, error) {
		resp, err := b.publish(ctx, in)
		return resp, statusOf(err)
	})
	net.HandleUnary(m, brokerapi.MethodGet, func(ctx context.Context, f *brokerapi.TimelineFilter) (*brokerapi.TimelineInfos, error) {
		resp, err := b.get(ctx, f)
		return resp, statusOf(err)
	})
	net.HandleStreamProto(m, brokerapi.MethodSubscribe, func(ctx context.Context, s *net.ServerStreamOf[*brokerapi.TimelineFilter, *brokerapi.SafekeeperTimelineInfo]) error {
		return statusOf(b.subscribe(ctx, s))
	})
	return m
}

// Start listens on cfg.ListenAddr.
func (b *Broker) Start() error {
	l, err := b.env.Net.Listen(b.cfg.ListenAddr, b.Mux())
	if err != nil {
		return fmt.Errorf("broker: listen %s: %w", b.cfg.ListenAddr, err)
	}
	b.lisMu.Lock()
	b.listener = l
	b.lisMu.Unlock()
	b.log.Info("broker serving", "addr", l.Addr())
	return nil
}

// Addr is the bound address (after Start).
func (b *Broker) Addr() string {
	b.lisMu.Lock()
	defer b.lisMu.Unlock()
	if b.listener == nil {
		return ""
	}
	return b.listener.Addr()
}

// Drain stops accepting calls and waits (until ctx ends) for in-flight
// ones when the transport supports it (net/grpcx), then stops.
func (b *Broker) Drain(ctx context.Context) error {
	b.lisMu.Lock()
	l := b.listener
	b.lisMu.Unlock()
	if d, ok := l.(interface{ Drain(context.Context) error }); ok {
		_ = d.Drain(ctx)
	}
	return b.Stop()
}

// Stop closes the listener, which ends every call.
func (b *Broker) Stop() error {
	b.lisMu.Lock()
	l := b.listener
	b.listener = nil
	b.lisMu.Unlock()
	if l == nil {
		return nil
	}
	return l.Close()
}

func (b *Broker) publish(ctx context.Context, in *brokerapi.SafekeeperTimelineInfo) (*brokerapi.PublishResponse, error) {
	if in.SafekeeperId == "" || in.TenantId == "" || in.TimelineId == "" {
		return nil, ErrMissingID
	}
	if err := b.mu.Lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	b.expireLocked()
	k := keyOf(in)
	if _, ok := b.entries[k]; !ok && len(b.entries) >= b.cfg.MaxEntries {
		return nil, fmt.Errorf("%w: %d entries", ErrFull, len(b.entries))
	}
	b.version++
	info := proto.Clone(in).(*brokerapi.SafekeeperTimelineInfo)
	info.AgeMs = 0
	b.entries[k] = &entry{info: info, received: b.env.Clock.Mono(), version: b.version}
	b.published.Inc()
	b.cond.Broadcast()
	return &brokerapi.PublishResponse{}, nil
}

func (b *Broker) expireLocked() {
	now := b.env.Clock.Mono()
	for _, k := range slices.Sorted(maps.Keys(b.entries)) {
		if now-b.entries[k].received > b.cfg.EntryTTL {
			delete(b.entries, k)
		}
	}
}

func matches(f *brokerapi.TimelineFilter, i *brokerapi.SafekeeperTimelineInfo) bool {
	return (f.TenantId == "" || f.TenantId == i.TenantId) && (f.TimelineId == "" || f.TimelineId == i.TimelineId)
}

// snapshotLocked returns matching entries newer than since, sorted by key.
func (b *Broker) snapshotLocked(f *brokerapi.TimelineFilter, since uint64) []*brokerapi.SafekeeperTimelineInfo {
	now := b.env.Clock.Mono()
	var out []*brokerapi.SafekeeperTimelineInfo
	for _, k := range slices.Sorted(maps.Keys(b.entries)) {
		e := b.entries[k]
		if e.version <= since || !matches(f, e.info) {
			continue
		}
		info := proto.Clone(e.info).(*brokerapi.SafekeeperTimelineInfo)
		info.AgeMs = uint64((now - e.received) / time.Millisecond)
		out = append(out, info)
	}
	return out
}

func (b *Broker) get(ctx context.Context, f *brokerapi.TimelineFilter) (*brokerapi.TimelineInfos, error) {
	if err := b.mu.Lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	b.expireLocked()
	return &brokerapi.TimelineInfos{Infos: b.snapshotLocked(f, 0)}, nil
}

func (b *Broker) subscribe(ctx context.Context, s *net.ServerStreamOf[*brokerapi.TimelineFilter, *brokerapi.SafekeeperTimelineInfo]) error {
	f, err := s.Recv()
	if err != nil {
		return err
	}
	var seen uint64
	for {
		if err := b.mu.Lock(ctx); err != nil {
			return err
		}
		for b.version == seen {
			if err := b.cond.Wait(ctx); err != nil {
				b.mu.Unlock()
				return err
			}
		}
		batch := b.snapshotLocked(f, seen)
		seen = b.version
		b.mu.Unlock()
		for _, info := range batch {
			if err := s.Send(info); err != nil {
				return err
			}
		}
	}
}
