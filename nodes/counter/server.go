package counter

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
)

// Method names served by the counter.
const (
	MethodIncr = "/strata.counter.Counter/Incr"
	MethodGet  = "/strata.counter.Counter/Get"
)

// IncrRequest asks to apply increment (Client, Seq).
type IncrRequest struct {
	Client uint32 `json:"client"`
	Seq    uint64 `json:"seq"`
}

// IncrResponse acknowledges a durable increment: Value is its position in
// the log (the counter's value right after it).
type IncrResponse struct {
	Value uint64 `json:"value"`
}

// GetRequest reads the counter.
type GetRequest struct{}

// GetResponse is the number of durable increments.
type GetResponse struct {
	Value uint64 `json:"value"`
}

// Bugs are planted defects. Only the simulator sets them.
type Bugs struct {
	// AckBeforeSync acknowledges an increment as soon as it is written,
	// leaving the sync to the flusher.
	AckBeforeSync bool
	// NoDirSync creates segments without syncing the log directory.
	NoDirSync bool
	// NoDedup applies a retried increment again instead of answering with
	// its original position.
	NoDedup bool
}

// FailpointCrashBeforeSync, when enabled in env.Failpoints, makes the
// flusher fail as if its sync had failed: the process ends (OnFatal).
const FailpointCrashBeforeSync = "counter/crash-before-sync"

// Limits and defaults.
const (
	DefaultDir            = "counter"
	DefaultSegmentEntries = 64
	MaxSegmentEntries     = 1 << 20
	DefaultMaxClients     = 1024
	DefaultMaxWaiting     = 1024
)

// Config configures a counter server.
type Config struct {
	// Addr is the listen address (required).
	Addr string
	// Dir is the log directory on the node's disk. Default "counter".
	Dir string
	// SegmentEntries is the number of records per segment file before a new
	// one is started. Default 64, at most MaxSegmentEntries.
	SegmentEntries int
	// MaxClients bounds the distinct clients tracked for deduplication;
	// increments from more are refused with ResourceExhausted. Default 1024.
	MaxClients int
	// MaxWaiting bounds handlers waiting for a sync; more are refused with
	// ResourceExhausted. Default 1024.
	MaxWaiting int
	// Bugs plants defects (simulator only).
	Bugs Bugs
	// OnFatal is called once on an unrecoverable disk error; it must end
	// the process (the simulator crashes the node). Required.
	OnFatal func(err error)
}

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("counter: invalid config")

// withDefaults fills zero fields with their defaults.
func (c Config) withDefaults() Config {
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.SegmentEntries == 0 {
		c.SegmentEntries = DefaultSegmentEntries
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.MaxWaiting == 0 {
		c.MaxWaiting = DefaultMaxWaiting
	}
	return c
}

// Validate reports a Config Start cannot use. It does not modify c: zero
// fields are checked as their defaults; a negative one is an error.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Addr == "":
		return fmt.Errorf("%w: Addr is required", ErrConfig)
	case c.OnFatal == nil:
		return fmt.Errorf("%w: OnFatal is required", ErrConfig)
	case c.SegmentEntries < 1 || c.SegmentEntries > MaxSegmentEntries:
		return fmt.Errorf("%w: SegmentEntries %d not in [1, %d]", ErrConfig, c.SegmentEntries, MaxSegmentEntries)
	case c.MaxClients < 1:
		return fmt.Errorf("%w: MaxClients %d must be positive", ErrConfig, c.MaxClients)
	case c.MaxWaiting < 1:
		return fmt.Errorf("%w: MaxWaiting %d must be positive", ErrConfig, c.MaxWaiting)
	}
	return nil
}

// clientState is what deduplication needs per client.
type clientState struct {
	seq uint64 // last applied seq
	pos uint64 // its position
}

// Server is a running counter.
type Server struct {
	env node.Env
	cfg Config

	mu       *clock.Mutex
	synced   *clock.Cond // broadcast when durable advances
	pending  *clock.Cond // signalled when count > durable
	seg      disk.File
	segIndex int
	segCount int // records in seg
	count    uint64
	durable  uint64
	waiting  int
	clients  map[uint32]clientState
	failed   bool
	listener net.Listener

	incrs prometheus.Counter
	syncs prometheus.Counter
}

// Start recovers the log from env.Disk, starts the flusher and listens on
// cfg.Addr.
func Start(env node.Env, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{env: env, cfg: cfg, clients: map[uint32]clientState{}}
	s.mu = clock.NewMutex(env.Clock)
	s.synced = clock.NewCond(s.mu)
	s.pending = clock.NewCond(s.mu)
	s.incrs = prometheus.NewCounter(prometheus.CounterOpts{Name: "counter_increments_total", Help: "Increments applied."})
	s.syncs = prometheus.NewCounter(prometheus.CounterOpts{Name: "counter_syncs_total", Help: "Log syncs."})
	if env.Metrics != nil {
		env.Metrics.MustRegister(s.incrs, s.syncs)
	}
	if err := s.recover(); err != nil {
		return nil, err
	}
	env.Clock.Go(context.Background(), "counter-flusher", s.flusher)
	mux := net.NewMux()
	net.HandleUnaryJSON(mux, MethodIncr, s.incr)
	net.HandleUnaryJSON(mux, MethodGet, s.get)
	l, err := env.Net.Listen(cfg.Addr, mux)
	if err != nil {
		return nil, fmt.Errorf("counter: listen %s: %w", cfg.Addr, err)
	}
	s.listener = l
	env.Log.Info("counter started", "value", s.count, "segments", s.segIndex)
	return s, nil
}

// recover reads the durable log, cuts a torn tail, and opens the segment to
// append to.
func (s *Server) recover() error {
	fsys, dir := s.env.Disk, s.cfg.Dir
	if err := disk.MkdirAllDurable(fsys, dir); err != nil {
		return fmt.Errorf("counter: mkdir %s: %w", dir, err)
	}
	// An earlier incarnation may have created a segment and then failed to
	// sync the directory (a failed start-up or a clean exit keeps the entry
	// in the page cache only). Recovery is about to trust and reuse what it
	// finds, so make every entry durable first: otherwise increments
	// acknowledged into a reused segment vanish with its entry at the next
	// crash.
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("counter: sync dir %s: %w", dir, err)
	}
	segs, err := readSegments(fsys, dir)
	if err != nil {
		return err
	}
	for _, sg := range segs {
		for _, r := range sg.recs {
			s.count++
			s.clients[r.Client] = clientState{seq: r.Seq, pos: s.count}
		}
	}
	s.durable = s.count
	if len(segs) == 0 {
		return s.newSegment(1)
	}
	last := segs[len(segs)-1]
	f, err := fsys.OpenRW(last.name)
	if err != nil {
		return fmt.Errorf("counter: open %s: %w", last.name, err)
	}
	if last.valid != last.size {
		s.env.Log.Warn("cutting torn log tail", "segment", last.name, "valid", last.valid, "size", last.size)
		if err := f.Truncate(last.valid); err != nil {
			return fmt.Errorf("counter: truncate %s: %w", last.name, err)
		}
	}
	// Sync even an intact tail: recovery may have read bytes that were
	// written but never synced by the previous incarnation, and they must
	// not be treated as durable until they are.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("counter: sync %s: %w", last.name, err)
	}
	s.seg, s.segIndex, s.segCount = f, last.index, len(last.recs)
	return nil
}

// newSegment starts segment i and makes its directory entry durable.
// Called with mu held (or during recovery).
func (s *Server) newSegment(i int) error {
	name := path.Join(s.cfg.Dir, segmentName(i))
	f, err := s.env.Disk.Create(name)
	if err != nil {
		return fmt.Errorf("counter: create %s: %w", name, err)
	}
	if !s.cfg.Bugs.NoDirSync {
		if err := s.env.Disk.SyncDir(s.cfg.Dir); err != nil {
			return fmt.Errorf("counter: sync dir %s: %w", s.cfg.Dir, err)
		}
	}
	s.seg, s.segIndex, s.segCount = f, i, 0
	return nil
}

// fatal reports an unrecoverable error once; the process must end.
func (s *Server) fatal(err error) error {
	if !s.failed {
		s.failed = true
		s.env.Log.Error("fatal disk error", "err", err)
		s.cfg.OnFatal(err)
	}
	return net.Errorf(net.Unavailable, "counter: failed: %v", err)
}

func (s *Server) incr(ctx context.Context, req IncrRequest) (IncrResponse, error) {
	if req.Seq == 0 {
		return IncrResponse{}, net.Errorf(net.InvalidArgument, "counter: seq must be positive")
	}
	if err := s.mu.Lock(ctx); err != nil {
		return IncrResponse{}, net.Errorf(net.Canceled, "counter: %v", err)
	}
	defer s.mu.Unlock()
	if s.failed {
		return IncrResponse{}, net.Errorf(net.Unavailable, "counter: failed")
	}
	cs, known := s.clients[req.Client]
	var pos uint64
	switch {
	case known && req.Seq == cs.seq && !s.cfg.Bugs.NoDedup:
		pos = cs.pos // a retry of the last increment
	case known && req.Seq < cs.seq && !s.cfg.Bugs.NoDedup:
		return IncrResponse{}, net.Errorf(net.FailedPrecondition, "counter: client %d seq %d is older than %d", req.Client, req.Seq, cs.seq)
	case !known && len(s.clients) >= s.cfg.MaxClients:
		return IncrResponse{}, net.Errorf(net.ResourceExhausted, "counter: more than %d clients", s.cfg.MaxClients)
	default:
		var err error
		if pos, err = s.append(Record(req)); err != nil {
			return IncrResponse{}, s.fatal(err)
		}
		s.clients[req.Client] = clientState{seq: req.Seq, pos: pos}
		s.incrs.Inc()
		s.pending.Signal()
	}
	if s.cfg.Bugs.AckBeforeSync {
		return IncrResponse{Value: pos}, nil
	}
	if s.durable < pos && s.waiting >= s.cfg.MaxWaiting {
		return IncrResponse{}, net.Errorf(net.ResourceExhausted, "counter: %d increments already wait for a sync", s.waiting)
	}
	s.waiting++
	defer func() { s.waiting-- }()
	for s.durable < pos {
		if s.failed {
			return IncrResponse{}, net.Errorf(net.Unavailable, "counter: failed")
		}
		if err := s.synced.Wait(ctx); err != nil {
			return IncrResponse{}, net.Errorf(net.Canceled, "counter: %v", err)
		}
	}
	return IncrResponse{Value: pos}, nil
}

// append writes one record, starting a new segment when the current one is
// full. Called with mu held.
func (s *Server) append(r Record) (uint64, error) {
	if s.segCount >= s.cfg.SegmentEntries {
		// The full segment is synced before the next one starts, so the
		// log's durable part is always a prefix.
		if err := s.seg.Sync(); err != nil {
			return 0, fmt.Errorf("counter: sync full segment: %w", err)
		}
		s.syncs.Inc()
		s.durable = s.count
		s.synced.Broadcast()
		_ = s.seg.Close()
		if err := s.newSegment(s.segIndex + 1); err != nil {
			return 0, err
		}
	}
	var b [RecordBytes]byte
	encodeRecord(b[:], r)
	if _, err := s.seg.Write(b[:]); err != nil {
		return 0, fmt.Errorf("counter: append: %w", err)
	}
	s.segCount++
	s.count++
	return s.count, nil
}

// flusher syncs the log whenever records wait for it (group commit).
func (s *Server) flusher(ctx context.Context) {
	for {
		if err := s.mu.Lock(ctx); err != nil {
			return
		}
		for s.durable == s.count && !s.failed {
			if err := s.pending.Wait(ctx); err != nil {
				s.mu.Unlock()
				return
			}
		}
		if s.failed {
			s.mu.Unlock()
			return
		}
		target := s.count
		err := s.seg.Sync()
		if fps := s.env.Failpoints; fps != nil {
			if _, fpErr := fps.Eval(FailpointCrashBeforeSync); fpErr == nil {
				// The process dies with a batch written but its sync not
				// acknowledged: those increments must stay unacknowledged.
				err = fmt.Errorf("counter: failpoint %s", FailpointCrashBeforeSync)
			}
		}
		if err != nil {
			_ = s.fatal(fmt.Errorf("counter: sync: %w", err))
			s.synced.Broadcast()
			s.mu.Unlock()
			return
		}
		s.syncs.Inc()
		s.durable = target
		s.synced.Broadcast()
		s.mu.Unlock()
	}
}

func (s *Server) get(ctx context.Context, _ GetRequest) (GetResponse, error) {
	if err := s.mu.Lock(ctx); err != nil {
		return GetResponse{}, net.Errorf(net.Canceled, "counter: %v", err)
	}
	defer s.mu.Unlock()
	return GetResponse{Value: s.durable}, nil
}

// Value is the number of durable increments (for tests).
func (s *Server) Value() uint64 { return s.durable }
