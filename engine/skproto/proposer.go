package skproto

import (
	"errors"
	"fmt"
	"slices"

	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/lsn"
)

// ErrDefeated reports that an acceptor holds a higher term, or refused us
// the vote in our own term: this proposer can never commit again and must
// be replaced by a new election with a higher term.
var ErrDefeated = errors.New("skproto: proposer defeated")

// ErrNotElected reports an Append before the proposer won its election.
var ErrNotElected = errors.New("skproto: proposer not elected")

// ErrTooLarge reports a record over MaxFramePayloadBytes, or an
// AppendRequest carrying more than MaxAppendWALBytes.
var ErrTooLarge = errors.New("skproto: too large")

// MaxAppendWALBytes bounds the WAL in one AppendRequest an acceptor
// accepts. It holds the largest single frame, and stays well below the
// transport's message limit so an oversized request is refused here, with
// ErrTooLarge, rather than by the transport.
const MaxAppendWALBytes = 8 << 20

// ProposerConfig configures a Proposer.
type ProposerConfig struct {
	// ID names the proposer in greetings and logs.
	ID string
	// TenantID and TimelineID name the timeline.
	TenantID, TimelineID string
	// StartLSN is where a new timeline's WAL begins.
	StartLSN lsn.LSN
	// Acceptors are the acceptor ids; a quorum is len/2+1.
	Acceptors []string
	// MaxAppendBytes bounds the WAL in one AppendRequest (a larger single
	// record still goes alone). Default 128 KiB.
	MaxAppendBytes int
	// MaxInflightBytes bounds unacknowledged WAL per acceptor. Default 4 MiB.
	MaxInflightBytes int
	// MaxBufferBytes bounds WAL kept for lagging acceptors; beyond it WAL
	// below the commit LSN is dropped and re-read from a peer when needed.
	// Default 64 MiB.
	MaxBufferBytes int
	// MaxRecoverBytes bounds one recovery window: WAL a lagging acceptor
	// lacks below the buffer is re-read (NeedWAL) and held in windows of at
	// most this many bytes (or one frame, if a single frame is larger),
	// one window at a time and apart from the buffer, so a gap of any size
	// is recovered in bounded memory and a failed read costs one window.
	// Default 8 MiB; at least MaxAppendBytes.
	MaxRecoverBytes int
	// Bugs plants deliberate defects (simulator only).
	Bugs Bugs
}

// Proposer defaults.
const (
	DefaultMaxAppendBytes   = 128 << 10
	DefaultMaxInflightBytes = 4 << 20
	DefaultMaxBufferBytes   = 64 << 20
	DefaultMaxRecoverBytes  = 8 << 20
)

// ErrConfig is wrapped by every error ProposerConfig.Validate returns.
var ErrConfig = errors.New("skproto: invalid proposer config")

// withDefaults fills zero limits with the defaults.
func (c ProposerConfig) withDefaults() ProposerConfig {
	if c.MaxAppendBytes == 0 {
		c.MaxAppendBytes = DefaultMaxAppendBytes
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if c.MaxBufferBytes == 0 {
		c.MaxBufferBytes = DefaultMaxBufferBytes
	}
	if c.MaxRecoverBytes == 0 {
		c.MaxRecoverBytes = DefaultMaxRecoverBytes
	}
	return c
}

// Validate checks the configuration (with defaults applied to a copy): at
// least one acceptor, no negative limit, MaxAppendBytes within the
// acceptors' limit, and the windows at least one append wide.
func (c ProposerConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case len(c.Acceptors) == 0:
		return fmt.Errorf("%w: Acceptors: at least one is needed", ErrConfig)
	case c.MaxAppendBytes < 0, c.MaxInflightBytes < 0, c.MaxBufferBytes < 0, c.MaxRecoverBytes < 0:
		return fmt.Errorf("%w: negative limit (MaxAppendBytes %d, MaxInflightBytes %d, MaxBufferBytes %d, MaxRecoverBytes %d)",
			ErrConfig, c.MaxAppendBytes, c.MaxInflightBytes, c.MaxBufferBytes, c.MaxRecoverBytes)
	case c.MaxAppendBytes > MaxAppendWALBytes:
		return fmt.Errorf("%w: MaxAppendBytes %d over the acceptors' limit %d", ErrConfig, c.MaxAppendBytes, MaxAppendWALBytes)
	case c.MaxInflightBytes < c.MaxAppendBytes:
		return fmt.Errorf("%w: MaxInflightBytes %d below MaxAppendBytes %d", ErrConfig, c.MaxInflightBytes, c.MaxAppendBytes)
	case c.MaxRecoverBytes < c.MaxAppendBytes:
		return fmt.Errorf("%w: MaxRecoverBytes %d below MaxAppendBytes %d", ErrConfig, c.MaxRecoverBytes, c.MaxAppendBytes)
	}
	return nil
}

// Out is a message the shell must send to an acceptor.
type Out struct {
	To  string
	Msg Msg
}

// NeedWAL asks the shell to read whole frames of WAL from Start towards End
// (a frame boundary) from acceptor From, in this proposer's term: at most
// MaxBytes, unless the first frame alone is larger, and hand what it read
// (all of it or a prefix of whole frames) to Recovered.
type NeedWAL struct {
	From       string
	Start, End lsn.LSN
	MaxBytes   int
}

type phase int

const (
	phaseGreeting phase = iota
	phaseVoting
	phaseElected
	phaseDefeated
)

type peer struct {
	connected bool
	greeted   bool
	term      Term
	voted     bool // vote granted (survives reconnects: the acceptor persisted it)
	vote      VoteResponse
	// awaitAck: ProposerElected sent, its AppendResponse not yet seen.
	awaitAck   bool
	streaming  bool
	next       lsn.LSN
	flush      lsn.LSN
	sentCommit lsn.LSN
}

// Proposer is the walproposer's step machine for one timeline.
type Proposer struct {
	cfg     ProposerConfig
	quorum  int
	phase   phase
	term    Term
	peers   map[string]*peer
	order   []string // sorted acceptor ids, for deterministic iteration
	history TermHistory
	donor   string
	// epochStart is the donor's flush LSN: where this term's WAL begins.
	epochStart lsn.LSN
	commit     lsn.LSN
	// buf holds WAL [base, end).
	base, end lsn.LSN
	buf       []byte
	// rec is the recovery window: WAL [recBase, recBase+len(rec)), below
	// base, re-read for acceptors whose next position lies there.
	recBase lsn.LSN
	rec     []byte
}

// NewProposer returns a proposer in the greeting phase.
func NewProposer(cfg ProposerConfig) (*Proposer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Proposer{cfg: cfg, quorum: len(cfg.Acceptors)/2 + 1, peers: map[string]*peer{}}
	for _, id := range cfg.Acceptors {
		if _, dup := p.peers[id]; dup {
			return nil, fmt.Errorf("skproto: acceptor %q listed twice", id)
		}
		p.peers[id] = &peer{}
		p.order = append(p.order, id)
	}
	slices.Sort(p.order)
	return p, nil
}

// Term is the proposer's term (0 until a quorum greeted it).
func (p *Proposer) Term() Term { return p.term }

// Elected reports whether this proposer won its election.
func (p *Proposer) Elected() bool { return p.phase == phaseElected }

// Defeated reports whether an acceptor showed a higher term.
func (p *Proposer) Defeated() bool { return p.phase == phaseDefeated }

// CommitLSN is the highest LSN known committed.
func (p *Proposer) CommitLSN() lsn.LSN { return p.commit }

// EndLSN is the end of the WAL this proposer holds.
func (p *Proposer) EndLSN() lsn.LSN { return p.end }

// EpochStartLSN is where this term's WAL begins (the donor's flush LSN).
func (p *Proposer) EpochStartLSN() lsn.LSN { return p.epochStart }

// History is the elected term history.
func (p *Proposer) History() TermHistory { return p.history.Clone() }

// Donor is the acceptor the proposer took its WAL from.
func (p *Proposer) Donor() string { return p.donor }

// Connect marks acceptor id as (re)connected and returns the greeting to
// send. Any earlier conversation with it is forgotten except its vote.
func (p *Proposer) Connect(id string) ([]Out, error) {
	if invariants.Enabled {
		defer p.assert(p.term, p.commit)
	}
	pr, ok := p.peers[id]
	if !ok {
		return nil, fmt.Errorf("skproto: unknown acceptor %q", id)
	}
	*pr = peer{voted: pr.voted, vote: pr.vote, connected: true}
	return []Out{{To: id, Msg: Greeting{ProposerID: p.cfg.ID, TenantID: p.cfg.TenantID,
		TimelineID: p.cfg.TimelineID, StartLSN: p.cfg.StartLSN}}}, nil
}

// Disconnect marks acceptor id as gone; nothing more is sent to it until
// Connect.
func (p *Proposer) Disconnect(id string) {
	if invariants.Enabled {
		defer p.assert(p.term, p.commit)
	}
	if pr, ok := p.peers[id]; ok {
		*pr = peer{voted: pr.voted, vote: pr.vote}
	}
}

func (p *Proposer) defeat(by Term) error {
	p.phase = phaseDefeated
	return fmt.Errorf("%w: an acceptor holds term %d, the proposer has term %d", ErrDefeated, by, p.term)
}

// Step processes one message from acceptor from.
func (p *Proposer) Step(from string, m Msg) ([]Out, error) {
	if invariants.Enabled {
		defer p.assert(p.term, p.commit)
	}
	pr, ok := p.peers[from]
	if !ok {
		return nil, fmt.Errorf("%w: message from unknown acceptor %q", ErrProtocol, from)
	}
	if p.phase == phaseDefeated {
		return nil, ErrDefeated
	}
	if !pr.connected {
		return nil, nil // stale message from a broken connection
	}
	switch m := m.(type) {
	case GreetingResponse:
		return p.onGreeting(from, pr, m)
	case VoteResponse:
		return p.onVote(from, pr, m)
	case AppendResponse:
		return p.onAppendResponse(from, pr, m)
	}
	return nil, fmt.Errorf("%w: proposer cannot handle %T", ErrProtocol, m)
}

func (p *Proposer) onGreeting(from string, pr *peer, m GreetingResponse) ([]Out, error) {
	pr.greeted, pr.term = true, m.Term
	switch p.phase {
	case phaseGreeting:
		n, maxTerm := 0, Term(0)
		for _, id := range p.order {
			if q := p.peers[id]; q.greeted {
				n++
				maxTerm = max(maxTerm, q.term)
			}
		}
		if n < p.quorum {
			return nil, nil
		}
		p.term = maxTerm + 1
		p.phase = phaseVoting
		var outs []Out
		for _, id := range p.order {
			if p.peers[id].greeted {
				outs = append(outs, Out{To: id, Msg: VoteRequest{Term: p.term}})
			}
		}
		return outs, nil
	default:
		if m.Term > p.term {
			return nil, p.defeat(m.Term)
		}
		return []Out{{To: from, Msg: VoteRequest{Term: p.term}}}, nil
	}
}

func (p *Proposer) onVote(from string, pr *peer, m VoteResponse) ([]Out, error) {
	if m.Term > p.term {
		return nil, p.defeat(m.Term)
	}
	if err := m.History.Validate(); err != nil {
		return nil, err
	}
	if m.VoteGiven && m.Term == p.term {
		pr.voted, pr.vote = true, m
	}
	switch p.phase {
	case phaseVoting:
		if !m.VoteGiven && !pr.voted {
			// The acceptor promised our term to someone (maybe to us, in
			// a reply that was lost): its vote can never be ours, and
			// waiting for it could wait forever. Step aside; a new
			// proposer takes a higher term.
			return nil, p.defeat(m.Term)
		}
		n := 0
		for _, id := range p.order {
			if p.peers[id].voted {
				n++
			}
		}
		if n < p.quorum {
			return nil, nil
		}
		return p.becomeElected(), nil
	case phaseElected:
		// A late or reconnected acceptor in our term joins the stream —
		// once: a peer already told (awaiting its ack or streaming) must
		// not get a second start point computed from an older flush.
		if m.Term == p.term && !pr.awaitAck && !pr.streaming {
			return []Out{p.electedMsg(from, pr, m)}, nil
		}
	}
	return nil, nil
}

func (p *Proposer) becomeElected() []Out {
	var donor string
	var best VoteResponse
	for _, id := range p.order {
		q := p.peers[id]
		if !q.voted {
			continue
		}
		v := q.vote
		if donor == "" || v.History.LastTerm() > best.History.LastTerm() ||
			(v.History.LastTerm() == best.History.LastTerm() && v.FlushLSN > best.FlushLSN) {
			donor, best = id, v
		}
	}
	p.phase = phaseElected
	p.donor = donor
	p.epochStart = best.FlushLSN
	if best.FlushLSN == 0 && len(best.History) == 0 {
		p.epochStart = p.cfg.StartLSN
	}
	p.history = append(best.History.UpTo(p.epochStart), TermSwitch{Term: p.term, LSN: p.epochStart})
	p.base, p.end, p.buf = p.epochStart, p.epochStart, nil
	p.recBase, p.rec = 0, nil
	for _, id := range p.order {
		if q := p.peers[id]; q.voted {
			p.commit = max(p.commit, min(q.vote.CommitLSN, p.epochStart))
		}
	}
	var outs []Out
	for _, id := range p.order {
		// A peer that reconnected since it voted is told after its
		// greeting and vote on the new connection, not from the old vote.
		q := p.peers[id]
		if q.connected && q.greeted && q.voted {
			outs = append(outs, p.electedMsg(id, q, q.vote))
		}
	}
	return outs
}

func (p *Proposer) electedMsg(id string, pr *peer, v VoteResponse) Out {
	start := LastCommonPoint(p.history, p.end, v.History, v.FlushLSN)
	pr.awaitAck, pr.streaming = true, false
	return Out{To: id, Msg: ProposerElected{Term: p.term, StartStreamingAt: start, History: p.history.Clone()}}
}

func (p *Proposer) onAppendResponse(from string, pr *peer, m AppendResponse) ([]Out, error) {
	if m.Term > p.term {
		return nil, p.defeat(m.Term)
	}
	if p.phase != phaseElected || m.Term != p.term {
		return nil, nil
	}
	if pr.awaitAck {
		pr.awaitAck, pr.streaming = false, true
		pr.next, pr.flush, pr.sentCommit = m.FlushLSN, m.FlushLSN, 0
	} else if pr.streaming {
		pr.flush = max(pr.flush, m.FlushLSN)
	}
	p.advanceCommit()
	return p.pump(), nil
}

func (p *Proposer) advanceCommit() {
	var flushes []lsn.LSN
	for _, id := range p.order {
		if q := p.peers[id]; q.streaming {
			flushes = append(flushes, q.flush)
		}
	}
	need := p.quorum
	if p.cfg.Bugs.CommitWithoutQuorum {
		need = 1 // planted bug: one acceptor's flush counts as a majority
	}
	if len(flushes) < need {
		return
	}
	slices.Sort(flushes)
	slices.Reverse(flushes)
	c := flushes[need-1]
	if c >= p.epochStart && c > p.commit {
		p.commit = c
	}
}

// Trim drops buffered WAL every acceptor has or, over MaxBufferBytes,
// everything below the commit LSN. The shell calls it after it has looked
// at newly committed WAL.
func (p *Proposer) Trim() {
	if invariants.Enabled {
		defer p.assertTrimmed(p.term, p.commit)
	}
	horizon := p.commit
	allStreaming := true
	for _, id := range p.order {
		q := p.peers[id]
		if !q.streaming {
			allStreaming = false
			continue
		}
		horizon = min(horizon, q.flush)
	}
	switch {
	case len(p.buf) > p.cfg.MaxBufferBytes:
		// Over the bound, a lagging acceptor (streaming or not) no longer
		// holds WAL here: what it lacks below the commit LSN is on a
		// majority and is re-read for it (MissingWAL).
		horizon = p.commit
	case !allStreaming:
		p.dropUnusedWindow()
		return
	}
	p.dropUnusedWindow()
	if horizon > p.base {
		// Reslice rather than copy: bytes already handed out in
		// AppendRequests are never overwritten (appends only write past
		// len), and the dropped prefix is freed when append next
		// reallocates.
		p.buf = p.buf[horizon-p.base:]
		p.base = horizon
	}
}

// Append frames records and adds them to the WAL. It returns the LSN just
// past the last one; the records are committed once CommitLSN reaches it.
func (p *Proposer) Append(records [][]byte) (lsn.LSN, []Out, error) {
	if invariants.Enabled {
		defer p.assert(p.term, p.commit)
	}
	switch p.phase {
	case phaseDefeated:
		return 0, nil, ErrDefeated
	case phaseElected:
	default:
		return 0, nil, ErrNotElected
	}
	for _, r := range records {
		if len(r) > MaxFramePayloadBytes {
			return 0, nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(r))
		}
	}
	for _, r := range records {
		p.buf = AppendFrame(p.buf, r)
	}
	p.end = p.base + lsn.LSN(len(p.buf))
	return p.end, p.pump(), nil
}

// Pump returns the AppendRequests the flow-control windows allow now.
func (p *Proposer) Pump() []Out { return p.pump() }

func (p *Proposer) pump() []Out {
	if p.phase != phaseElected {
		return nil
	}
	var outs []Out
	for _, id := range p.order {
		q := p.peers[id]
		if !q.streaming {
			continue
		}
		for q.next < p.end && int(q.next-q.flush) < p.cfg.MaxInflightBytes {
			// From the buffer, or below it from the recovery window.
			src, srcBase := p.buf, p.base
			if q.next < p.base {
				if q.next < p.recBase || q.next >= p.recEnd() {
					break // not held: MissingWAL asks for it
				}
				src, srcBase = p.rec, p.recBase
			}
			off := int(q.next - srcBase)
			n := 0
			for off+n < len(src) {
				fl, ok := PeekFrameLen(src[off+n:])
				if !ok || off+n+fl > len(src) {
					break
				}
				if n > 0 && n+fl > p.cfg.MaxAppendBytes {
					break
				}
				n += fl
			}
			if n == 0 {
				break
			}
			wal := src[off : off+n]
			outs = append(outs, Out{To: id, Msg: AppendRequest{Term: p.term, BeginLSN: q.next,
				EndLSN: q.next + lsn.LSN(n), CommitLSN: p.commit, TruncateLSN: p.base, WAL: wal}})
			q.next += lsn.LSN(n)
			q.sentCommit = p.commit
		}
		if q.sentCommit < p.commit && q.next == p.end {
			outs = append(outs, Out{To: id, Msg: AppendRequest{Term: p.term, BeginLSN: q.next,
				EndLSN: q.next, CommitLSN: p.commit, TruncateLSN: p.base}})
			q.sentCommit = p.commit
		}
	}
	return outs
}

// recEnd is the end of the recovery window.
func (p *Proposer) recEnd() lsn.LSN { return p.recBase + lsn.LSN(len(p.rec)) }

// windowInUse reports whether a streaming acceptor's next position lies in
// the recovery window: it is still being sent from there.
func (p *Proposer) windowInUse() bool {
	for _, id := range p.order {
		if q := p.peers[id]; q.streaming && q.next >= p.recBase && q.next < p.recEnd() && q.next < p.base {
			return true
		}
	}
	return false
}

func (p *Proposer) dropUnusedWindow() {
	if p.rec != nil && !p.windowInUse() {
		p.recBase, p.rec = 0, nil
	}
}

// MissingWAL reports WAL a streaming acceptor needs that neither the buffer
// nor the recovery window holds, and which acceptor to read it from: the
// next window, from the lowest such acceptor's position towards the buffer
// start, at most MaxRecoverBytes. While the current window is still being
// sent to an acceptor nothing new is asked for, so at most one window is
// held (acceptors further behind wait their turn).
func (p *Proposer) MissingWAL() (NeedWAL, bool) {
	if p.phase != phaseElected || p.windowInUse() {
		return NeedWAL{}, false
	}
	start := p.base
	for _, id := range p.order {
		if q := p.peers[id]; q.streaming && q.next < start {
			start = q.next
		}
	}
	if start == p.base {
		return NeedWAL{}, false
	}
	// Any acceptor that follows us and has the range will do; the donor
	// has everything below the epoch start even before it follows us.
	from := ""
	var best lsn.LSN
	for _, id := range p.order {
		q := p.peers[id]
		if q.streaming && q.flush >= p.base && q.flush > best {
			from, best = id, q.flush
		}
	}
	if from == "" && p.base <= p.epochStart {
		from = p.donor
	}
	if from == "" {
		return NeedWAL{}, false
	}
	return NeedWAL{From: from, Start: start, End: p.base, MaxBytes: p.cfg.MaxRecoverBytes}, true
}

// Recovered hands the proposer WAL read for a NeedWAL: whole valid frames
// starting at start, ending at or below the buffer start. It becomes the
// recovery window (replacing the previous one), so the buffer keeps its
// bound however large the gap; data is copied.
func (p *Proposer) Recovered(start lsn.LSN, data []byte) ([]Out, error) {
	if invariants.Enabled {
		defer p.assert(p.term, p.commit)
	}
	if p.phase != phaseElected {
		return nil, nil
	}
	end := start + lsn.LSN(len(data))
	if len(data) == 0 || end > p.base {
		return nil, fmt.Errorf("%w: recovered %s+%d is empty or passes the buffer start %s", ErrProtocol, start, len(data), p.base)
	}
	if n, ok := PeekFrameLen(data); len(data) > p.cfg.MaxRecoverBytes && (!ok || n != len(data)) {
		return nil, fmt.Errorf("%w: recovered %d bytes at %s, window limit %d", ErrProtocol, len(data), start, p.cfg.MaxRecoverBytes)
	}
	if ValidPrefix(data) != len(data) {
		return nil, fmt.Errorf("%w: recovered WAL at %s: %w", ErrCorrupt, start, ErrFrame)
	}
	p.recBase, p.rec = start, append([]byte(nil), data...)
	return p.pump(), nil
}

// WindowBytes is the size of the recovery window held.
func (p *Proposer) WindowBytes() int { return len(p.rec) }

// BufferStart is the lowest LSN the proposer still buffers.
func (p *Proposer) BufferStart() lsn.LSN { return p.base }

// ReadBuffered returns buffered WAL [start, end) if the proposer holds it.
func (p *Proposer) ReadBuffered(start, end lsn.LSN) ([]byte, bool) {
	if start < p.base || end > p.end || start > end {
		return nil, false
	}
	return p.buf[start-p.base : end-p.base], true
}

// checkInvariants checks the proposer's postconditions after a call that
// began with term prevTerm and commit LSN prevCommit: the term and the
// commit LSN never decrease, commit ≤ end of the WAL held, the buffer is
// exactly [base, end), the recovery window lies below the buffer within
// MaxRecoverBytes (or is one frame), and once elected the history is valid
// and ends with (term, epoch start).
func (p *Proposer) checkInvariants(prevTerm Term, prevCommit lsn.LSN) error {
	if err := invariants.Check(p.term >= prevTerm && p.commit >= prevCommit,
		"skproto: proposer %s: term %d→%d, commit %s→%s went back", p.cfg.ID, prevTerm, p.term, prevCommit, p.commit); err != nil {
		return err
	}
	if err := invariants.Check(p.commit <= p.end, "skproto: proposer %s: commit %s above the end of its WAL %s", p.cfg.ID, p.commit, p.end); err != nil {
		return err
	}
	if err := invariants.Check(p.base <= p.end && int(p.end-p.base) == len(p.buf),
		"skproto: proposer %s: buffer [%s, %s) holds %d bytes", p.cfg.ID, p.base, p.end, len(p.buf)); err != nil {
		return err
	}
	if len(p.rec) > 0 {
		fl, one := PeekFrameLen(p.rec)
		if err := invariants.Check(p.recEnd() <= p.base && (len(p.rec) <= p.cfg.MaxRecoverBytes || (one && fl == len(p.rec))),
			"skproto: proposer %s: recovery window [%s, %s) of %d bytes (limit %d), buffer from %s",
			p.cfg.ID, p.recBase, p.recEnd(), len(p.rec), p.cfg.MaxRecoverBytes, p.base); err != nil {
			return err
		}
	}
	if p.phase == phaseElected || (p.phase == phaseDefeated && len(p.history) > 0) {
		last := TermSwitch{}
		if len(p.history) > 0 {
			last = p.history[len(p.history)-1]
		}
		if err := invariants.Verify(p.history.Validate()); err != nil {
			return err
		}
		return invariants.Check(last == TermSwitch{Term: p.term, LSN: p.epochStart} && p.epochStart <= p.end,
			"skproto: proposer %s: elected in term %d at %s (WAL to %s) with history %s", p.cfg.ID, p.term, p.epochStart, p.end, p.history)
	}
	return nil
}

// assert panics (assertions on) if a call broke the proposer's invariants.
func (p *Proposer) assert(prevTerm Term, prevCommit lsn.LSN) {
	_ = p.checkInvariants(prevTerm, prevCommit)
}

// assertTrimmed is assert plus Trim's bound: the buffer holds at most
// MaxBufferBytes, or only WAL at and above the commit LSN.
func (p *Proposer) assertTrimmed(prevTerm Term, prevCommit lsn.LSN) {
	p.assert(prevTerm, prevCommit)
	_ = invariants.Check(len(p.buf) <= p.cfg.MaxBufferBytes || p.base >= p.commit,
		"skproto: proposer %s: buffer holds %d bytes over MaxBufferBytes %d below commit %s (from %s)",
		p.cfg.ID, len(p.buf), p.cfg.MaxBufferBytes, p.commit, p.base)
}
