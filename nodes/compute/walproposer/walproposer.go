package walproposer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
)

// Observer sees what the proposer decides; the simulator's checkers use it.
// Calls happen with the proposer's lock held: they must not block.
type Observer interface {
	// Elected: proposer id won term with this history.
	Elected(id string, term skproto.Term, history skproto.TermHistory)
	// Voted: acceptor granted proposer id its vote in term.
	Voted(id, acceptor string, term skproto.Term)
	// Committed: commit moved to commit; wal holds [start, commit), the
	// part of the newly committed WAL this proposer holds (start is a
	// frame boundary; wal may be empty).
	Committed(id string, term skproto.Term, commit, start lsn.LSN, wal []byte)
}

// ReadObserver, if the Observer also implements it, sees every WAL chunk a
// safekeeper served to the recovery reader, before the proposer checks it
// (the simulator verifies that safekeepers never serve damaged WAL).
type ReadObserver interface {
	ServedWAL(id, from string, start lsn.LSN, wal []byte)
}

// Config configures a WALProposer.
type Config struct {
	// ID names this proposer (compute id plus incarnation is a good choice).
	ID string
	// TenantID and TimelineID name the timeline.
	TenantID, TimelineID string
	// StartLSN is where a new timeline's WAL begins. Default 0x1000.
	StartLSN lsn.LSN
	// Safekeepers are the safekeepers' addresses (they also identify the
	// acceptors). Usually 3.
	Safekeepers []string
	// ReconnectBackoff is the first delay before redialling a safekeeper,
	// doubled up to MaxReconnectBackoff. Defaults 50ms and 2s.
	ReconnectBackoff    time.Duration
	MaxReconnectBackoff time.Duration
	// PeerTimeout breaks a connection whose replies stop while requests
	// are outstanding. Default 5s.
	PeerTimeout time.Duration
	// CallTimeout bounds dials and recovery reads. Default 5s.
	CallTimeout time.Duration
	// MaxAppendBytes, MaxInflightBytes, MaxBufferBytes, MaxRecoverBytes:
	// see skproto.ProposerConfig (0: its defaults). Recovery reads WAL a
	// lagging safekeeper lacks in windows of at most MaxRecoverBytes, each
	// under one CallTimeout.
	MaxAppendBytes, MaxInflightBytes, MaxBufferBytes, MaxRecoverBytes int
	// MaxUncommittedBytes bounds WAL appended but not yet committed:
	// Append waits (backpressure) beyond it. Default 16 MiB.
	MaxUncommittedBytes int
	// Bugs plants deliberate defects; only the simulator sets it.
	Bugs skproto.Bugs
	// Observer, if set, sees elections and commits.
	Observer Observer
}

// Defaults of Config.
const (
	DefaultStartLSN            = lsn.LSN(0x1000)
	DefaultReconnectBackoff    = 50 * time.Millisecond
	DefaultMaxReconnectBackoff = 2 * time.Second
	DefaultPeerTimeout         = 5 * time.Second
	DefaultCallTimeout         = 5 * time.Second
	DefaultMaxUncommittedBytes = 16 << 20
)

// ErrConfig is wrapped by every error Config.Validate returns.
var ErrConfig = errors.New("walproposer: invalid config")

// withDefaults fills zero fields with the defaults (the proposer's limits
// are left to skproto.ProposerConfig's own).
func (c Config) withDefaults() Config {
	if c.StartLSN == 0 {
		c.StartLSN = DefaultStartLSN
	}
	if c.ReconnectBackoff == 0 {
		c.ReconnectBackoff = DefaultReconnectBackoff
	}
	if c.MaxReconnectBackoff == 0 {
		c.MaxReconnectBackoff = DefaultMaxReconnectBackoff
	}
	if c.PeerTimeout == 0 {
		c.PeerTimeout = DefaultPeerTimeout
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = DefaultMaxUncommittedBytes
	}
	return c
}

// proposerConfig is the step machine's part of the configuration.
func (c Config) proposerConfig() skproto.ProposerConfig {
	return skproto.ProposerConfig{ID: c.ID, TenantID: c.TenantID, TimelineID: c.TimelineID,
		StartLSN: c.StartLSN, Acceptors: c.Safekeepers, MaxAppendBytes: c.MaxAppendBytes,
		MaxInflightBytes: c.MaxInflightBytes, MaxBufferBytes: c.MaxBufferBytes, MaxRecoverBytes: c.MaxRecoverBytes, Bugs: c.Bugs}
}

// Validate checks the configuration with the defaults applied (to its own
// copy: c is not changed), the proposer's limits included.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.ID == "" || c.TenantID == "" || c.TimelineID == "":
		return bad("ID, TenantID and TimelineID are required")
	case len(c.Safekeepers) == 0:
		return bad("Safekeepers: none")
	case c.ReconnectBackoff < 0, c.PeerTimeout < 0, c.CallTimeout < 0:
		return bad("negative duration (ReconnectBackoff %v, PeerTimeout %v, CallTimeout %v)", c.ReconnectBackoff, c.PeerTimeout, c.CallTimeout)
	case c.MaxReconnectBackoff < c.ReconnectBackoff:
		return bad("MaxReconnectBackoff %v below ReconnectBackoff %v", c.MaxReconnectBackoff, c.ReconnectBackoff)
	case c.MaxUncommittedBytes < 0:
		return bad("MaxUncommittedBytes %d is negative", c.MaxUncommittedBytes)
	}
	if err := c.proposerConfig().Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// WALProposer is the compute's WAL writer.
type WALProposer struct {
	env node.Env
	cfg Config
	log *slog.Logger

	mu      *clock.Mutex
	cond    *clock.Cond
	core    *skproto.Proposer
	outbox  map[string][]skproto.Msg
	err     error // set once: defeated or stopped
	elected bool
	commit  lsn.LSN // last commit reported to the observer
	group   *clock.Group
}

// ErrStopped reports use after Stop.
var ErrStopped = errors.New("walproposer: stopped")

// New builds a proposer; Start runs it.
func New(env node.Env, cfg Config) (*WALProposer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	core, err := skproto.NewProposer(cfg.proposerConfig())
	if err != nil {
		return nil, err
	}
	w := &WALProposer{env: env, cfg: cfg, log: env.Log.With("component", "walproposer", "proposer", cfg.ID),
		core: core, outbox: map[string][]skproto.Msg{}}
	w.mu = clock.NewMutex(env.Clock)
	w.cond = clock.NewCond(w.mu)
	return w, nil
}

// Start connects to every safekeeper and runs the election.
func (w *WALProposer) Start(ctx context.Context) {
	w.group = clock.NewGroup(w.env.Clock, ctx)
	for _, addr := range w.cfg.Safekeepers {
		w.group.Go("wp-peer-"+addr, func(ctx context.Context) error { return w.peerLoop(ctx, addr) })
	}
	w.group.Go("wp-recover", w.recoverLoop)
}

// Stop ends every task; pending waits fail with ErrStopped.
func (w *WALProposer) Stop() {
	if err := w.mu.Lock(context.Background()); err == nil {
		if w.err == nil {
			w.err = ErrStopped
		}
		w.cond.Broadcast()
		w.mu.Unlock()
	}
	if w.group != nil {
		_ = w.group.Stop()
	}
}

// Append adds records to the WAL once the proposer is elected (waiting for
// that) and returns the LSN just past them.
func (w *WALProposer) Append(ctx context.Context, records [][]byte) (lsn.LSN, error) {
	if err := w.mu.Lock(ctx); err != nil {
		return 0, err
	}
	defer w.mu.Unlock()
	size := 0
	for _, r := range records {
		size += skproto.FrameHeaderBytes + len(r)
	}
	// Wait to be elected, then for room under MaxUncommittedBytes (a batch
	// larger than the limit goes alone, once nothing else is pending).
	for w.err == nil && (!w.core.Elected() || (w.core.EndLSN() > w.core.CommitLSN() &&
		int(w.core.EndLSN()-w.core.CommitLSN())+size > w.cfg.MaxUncommittedBytes)) {
		if err := w.cond.Wait(ctx); err != nil {
			return 0, err
		}
	}
	if w.err != nil {
		return 0, w.err
	}
	end, outs, err := w.core.Append(records)
	if err != nil {
		return 0, err
	}
	w.route(outs)
	return end, nil
}

// WaitCommitted waits until the commit LSN reaches l.
func (w *WALProposer) WaitCommitted(ctx context.Context, l lsn.LSN) error {
	if err := w.mu.Lock(ctx); err != nil {
		return err
	}
	defer w.mu.Unlock()
	for w.core.CommitLSN() < l {
		if w.err != nil {
			return w.err
		}
		if err := w.cond.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Status is a snapshot of the proposer.
type Status struct {
	Term      skproto.Term
	Elected   bool
	Defeated  bool
	CommitLSN lsn.LSN
	EndLSN    lsn.LSN
	Err       error
}

// Status returns the proposer's state.
func (w *WALProposer) Status(ctx context.Context) (Status, error) {
	if err := w.mu.Lock(ctx); err != nil {
		return Status{}, err
	}
	defer w.mu.Unlock()
	return Status{Term: w.core.Term(), Elected: w.core.Elected(), Defeated: w.core.Defeated(),
		CommitLSN: w.core.CommitLSN(), EndLSN: w.core.EndLSN(), Err: w.err}, nil
}

// route queues outs for their connections and reports progress; mu held.
func (w *WALProposer) route(outs []skproto.Out) {
	for _, o := range outs {
		w.outbox[o.To] = append(w.outbox[o.To], o.Msg)
	}
	if w.core.Elected() && !w.elected {
		w.elected = true
		w.log.Info("elected", "term", w.core.Term(), "donor", w.core.Donor(), "epoch_start", w.core.EpochStartLSN())
		if w.cfg.Observer != nil {
			w.cfg.Observer.Elected(w.cfg.ID, w.core.Term(), w.core.History())
		}
	}
	if c := w.core.CommitLSN(); c > w.commit {
		if w.cfg.Observer != nil {
			// Part of the range may predate our buffer: report what we hold.
			start := max(w.commit, w.core.BufferStart())
			wal, ok := w.core.ReadBuffered(start, c)
			if !ok {
				start, wal = c, nil
			}
			w.cfg.Observer.Committed(w.cfg.ID, w.core.Term(), c, start, wal)
		}
		w.commit = c
		w.core.Trim()
	}
	w.cond.Broadcast()
}

func (w *WALProposer) fail(err error) {
	if w.err == nil {
		w.err = err
		w.log.Warn("proposer stopped", "err", err)
	}
	w.cond.Broadcast()
}

func (w *WALProposer) peerLoop(ctx context.Context, addr string) error {
	backoff := w.cfg.ReconnectBackoff
	for {
		connected, err := w.session(ctx, addr)
		if ctx.Err() != nil {
			return nil
		}
		if err := w.mu.Lock(ctx); err != nil {
			return nil
		}
		done := w.err != nil
		w.mu.Unlock()
		if done {
			return nil
		}
		if connected {
			backoff = w.cfg.ReconnectBackoff
		}
		w.log.Debug("safekeeper connection ended", "sk", addr, "err", err)
		if err := clock.Sleep(ctx, w.env.Clock, backoff); err != nil {
			return nil
		}
		backoff = min(2*backoff, w.cfg.MaxReconnectBackoff)
	}
}

// session runs one connection to a safekeeper until it breaks. connected
// reports whether the stream was established.
func (w *WALProposer) session(ctx context.Context, addr string) (connected bool, err error) {
	sctx, cancel := clock.WithCancel(ctx)
	defer cancel()
	dctx, dcancel := clock.WithTimeout(w.env.Clock, sctx, w.cfg.CallTimeout)
	conn, err := w.env.Net.Dial(dctx, addr)
	dcancel()
	if err != nil {
		return false, err
	}
	defer conn.Close()
	stream, err := skapi.OpenPropose(sctx, conn)
	if err != nil {
		return false, err
	}
	if err := w.mu.Lock(sctx); err != nil {
		return false, err
	}
	if w.err != nil {
		w.mu.Unlock()
		return false, w.err
	}
	outs, err := w.core.Connect(addr)
	if err != nil {
		w.mu.Unlock()
		return false, err
	}
	delete(w.outbox, addr)
	w.route(outs)
	w.mu.Unlock()

	// outstanding counts requests without a reply; lastRecv is when the
	// last reply came. Both are guarded by w.mu.
	outstanding := 0
	lastRecv := w.env.Clock.Mono()
	var readErr error
	readerDone := clock.NewWaitGroup(w.env.Clock)
	readerDone.Add(1)
	w.env.Clock.Go(sctx, "wp-recv-"+addr, func(ctx context.Context) {
		defer readerDone.Done()
		defer cancel()
		for {
			m, err := stream.Recv()
			if err != nil {
				readErr = err
				return
			}
			if err := w.mu.Lock(context.Background()); err != nil {
				readErr = err
				return
			}
			outstanding--
			lastRecv = w.env.Clock.Mono()
			if v, ok := m.(skproto.VoteResponse); ok && v.VoteGiven && w.cfg.Observer != nil {
				w.cfg.Observer.Voted(w.cfg.ID, addr, v.Term)
			}
			outs, err := w.core.Step(addr, m)
			if err != nil {
				if errors.Is(err, skproto.ErrDefeated) {
					w.fail(err)
				}
				readErr = err
				w.route(outs)
				w.mu.Unlock()
				return
			}
			w.route(outs)
			w.mu.Unlock()
		}
	})
	defer func() {
		cancel()
		_ = readerDone.Wait(context.Background())
		if lerr := w.mu.Lock(context.Background()); lerr == nil {
			w.core.Disconnect(addr)
			delete(w.outbox, addr)
			w.cond.Broadcast()
			w.mu.Unlock()
		}
		if err == nil {
			err = readErr
		}
	}()

	for {
		if err := w.mu.Lock(sctx); err != nil {
			return true, err
		}
		for len(w.outbox[addr]) == 0 && w.err == nil && sctx.Err() == nil {
			if outstanding > 0 && w.env.Clock.Mono()-lastRecv > w.cfg.PeerTimeout {
				w.mu.Unlock()
				return true, fmt.Errorf("walproposer: %s silent for %v", addr, w.cfg.PeerTimeout)
			}
			wctx, wcancel := clock.WithTimeout(w.env.Clock, sctx, w.cfg.PeerTimeout/2)
			_ = w.cond.Wait(wctx)
			wcancel()
		}
		if w.err != nil || sctx.Err() != nil {
			w.mu.Unlock()
			return true, sctx.Err()
		}
		batch := w.outbox[addr]
		delete(w.outbox, addr)
		if outstanding == 0 {
			lastRecv = w.env.Clock.Mono()
		}
		outstanding += len(batch)
		w.mu.Unlock()
		for _, m := range batch {
			if err := stream.Send(m); err != nil {
				return true, err
			}
		}
	}
}

// recoverLoop reads WAL the proposer lacks from the acceptor it names.
func (w *WALProposer) recoverLoop(ctx context.Context) error {
	for {
		if err := w.mu.Lock(ctx); err != nil {
			return nil
		}
		var need skproto.NeedWAL
		ok := false
		for w.err == nil {
			if need, ok = w.core.MissingWAL(); ok {
				break
			}
			if err := w.cond.Wait(ctx); err != nil {
				w.mu.Unlock()
				return nil
			}
		}
		term := w.core.Term()
		w.mu.Unlock()
		if !ok {
			return nil
		}
		data, err := w.readWindow(ctx, need, term)
		if net.CodeOf(err) == net.DataLoss {
			// The source found its copy damaged and will never serve
			// it: step aside so that a new election picks a healthy
			// donor (as Postgres' walproposer exits and restarts).
			if lerr := w.mu.Lock(ctx); lerr != nil {
				return nil
			}
			w.fail(fmt.Errorf("%w: recovery source %s reports data loss: %v", skproto.ErrDefeated, need.From, err))
			w.mu.Unlock()
			return nil
		}
		if len(data) > 0 {
			// Whole frames read before a failure are kept too: the next
			// window starts after them, never again at need.Start.
			if lerr := w.mu.Lock(ctx); lerr != nil {
				return nil
			}
			outs, rerr := w.core.Recovered(need.Start, data)
			w.route(outs)
			w.mu.Unlock()
			if err == nil {
				err = rerr
			}
		}
		if err != nil {
			w.log.Debug("WAL recovery failed", "from", need.From, "start", need.Start, "end", need.End, "err", err)
			if err := clock.Sleep(ctx, w.env.Clock, w.cfg.ReconnectBackoff); err != nil {
				return nil
			}
		}
	}
}

// readWindow reads one recovery window: whole frames from need.Start
// towards need.End, at most need.MaxBytes (a single larger frame alone),
// under one CallTimeout. On error it returns the frames read so far with
// the error.
func (w *WALProposer) readWindow(ctx context.Context, need skproto.NeedWAL, term skproto.Term) ([]byte, error) {
	ctx, cancel := clock.WithTimeout(w.env.Clock, ctx, w.cfg.CallTimeout)
	defer cancel()
	conn, err := w.env.Net.Dial(ctx, need.From)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var out []byte
	// Stop once not even an empty frame would fit.
	for pos := need.Start; pos < need.End && len(out)+skproto.FrameHeaderBytes <= need.MaxBytes; {
		resp, err := skapi.ReadWal(ctx, conn, &skapi.ReadWalRequest{
			Timeline: skapi.Ref(w.cfg.TenantID, w.cfg.TimelineID),
			StartLsn: uint64(pos), EndLsn: uint64(need.End), Term: uint64(term), MaxBytes: uint64(need.MaxBytes - len(out))})
		if err != nil {
			return out, err
		}
		wal := resp.GetWal()
		if len(wal) == 0 {
			return out, fmt.Errorf("walproposer: %s returned no WAL at %s", need.From, pos)
		}
		if ro, ok := w.cfg.Observer.(ReadObserver); ok {
			ro.ServedWAL(w.cfg.ID, need.From, pos, wal)
		}
		if len(out) > 0 && len(out)+len(wal) > need.MaxBytes {
			break // a frame larger than what is left opens the next window
		}
		out = append(out, wal...)
		pos += lsn.LSN(len(wal))
	}
	return out, nil
}
