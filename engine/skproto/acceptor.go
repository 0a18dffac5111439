package skproto

import (
	"fmt"

	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/lsn"
)

// AcceptorState is what an acceptor persists (in the safekeeper's control
// file). FlushLSN is not here: it is a property of the WAL on disk, found by
// scanning frames at start-up.
type AcceptorState struct {
	// Term is the highest term this acceptor has promised (voted in).
	Term Term
	// History is the term history of the WAL held.
	History TermHistory
	// CommitLSN is a lower bound of the commit LSN, at most the flush LSN
	// when it was persisted; it is also a frame boundary to scan from.
	CommitLSN lsn.LSN
	// StartLSN is where the timeline's WAL begins.
	StartLSN lsn.LSN
}

// Clone returns a deep copy.
func (s AcceptorState) Clone() AcceptorState {
	s.History = s.History.Clone()
	return s
}

// Ready is what the shell must do, in this order, for one step:
//  1. if Truncate, truncate WAL to TruncateLSN and make it durable;
//  2. if WAL is non-empty, write it at WriteLSN and sync;
//  3. if Persist, durably write State;
//  4. send Reply (if non-nil).
type Ready struct {
	Truncate    bool
	TruncateLSN lsn.LSN
	WriteLSN    lsn.LSN
	WAL         []byte
	Persist     bool
	State       AcceptorState
	Reply       Msg
}

// Acceptor is one safekeeper's side of the protocol for one timeline.
type Acceptor struct {
	nodeID string
	state  AcceptorState
	flush  lsn.LSN
	commit lsn.LSN
	// elected is the term whose ProposerElected this acceptor accepted
	// since start; appends are accepted only in that term.
	elected Term
	bugs    Bugs
}

// NewAcceptor restores an acceptor from its persisted state and the end of
// the valid WAL found on disk.
func NewAcceptor(nodeID string, st AcceptorState, flush lsn.LSN, bugs Bugs) (*Acceptor, error) {
	if err := st.History.Validate(); err != nil {
		return nil, err
	}
	if flush < st.CommitLSN {
		return nil, fmt.Errorf("%w: WAL ends at %s below persisted commit %s", ErrCorrupt, flush, st.CommitLSN)
	}
	if flush < st.StartLSN {
		return nil, fmt.Errorf("%w: WAL ends at %s below timeline start %s", ErrCorrupt, flush, st.StartLSN)
	}
	a := &Acceptor{nodeID: nodeID, state: st.Clone(), flush: flush, commit: st.CommitLSN, bugs: bugs}
	if invariants.Enabled {
		a.assert(a.state.Term, Ready{})
	}
	return a, nil
}

// checkInvariants checks the acceptor's postconditions after a step that
// began in term prevTerm and returned r: commit ≤ flush, the WAL starts at
// or below its flush, the term never decreases, the history is valid, an
// elected term is the promised term and the history ends in it, and the
// state handed out for persisting is the acceptor's own.
func (a *Acceptor) checkInvariants(prevTerm Term, r Ready) error {
	s := a.state
	if err := invariants.Check(a.commit <= a.flush, "skproto: acceptor %s: commit %s above flush %s", a.nodeID, a.commit, a.flush); err != nil {
		return err
	}
	if err := invariants.Check(s.StartLSN <= a.flush, "skproto: acceptor %s: flush %s below the timeline start %s", a.nodeID, a.flush, s.StartLSN); err != nil {
		return err
	}
	if err := invariants.Check(s.Term >= prevTerm, "skproto: acceptor %s: term went back from %d to %d", a.nodeID, prevTerm, s.Term); err != nil {
		return err
	}
	if err := invariants.Verify(s.History.Validate()); err != nil {
		return err
	}
	if a.elected != 0 {
		if err := invariants.Check(a.elected == s.Term && s.History.LastTerm() == a.elected,
			"skproto: acceptor %s: follows term %d, promised %d, history %s", a.nodeID, a.elected, s.Term, s.History); err != nil {
			return err
		}
	}
	if r.Persist {
		return invariants.Check(r.State.Term == s.Term && r.State.CommitLSN <= a.flush,
			"skproto: acceptor %s: persists term %d commit %s, holds term %d flush %s", a.nodeID, r.State.Term, r.State.CommitLSN, s.Term, a.flush)
	}
	return nil
}

// assert panics (assertions on) if a step broke the acceptor's invariants.
func (a *Acceptor) assert(prevTerm Term, r Ready) { _ = a.checkInvariants(prevTerm, r) }

// State returns the persistent state with the in-memory commit LSN folded
// in, for a lazy persist by the shell.
func (a *Acceptor) State() AcceptorState {
	s := a.state.Clone()
	s.CommitLSN = a.commit
	return s
}

// FlushLSN is the end of the WAL held (synced once the last Ready is done).
func (a *Acceptor) FlushLSN() lsn.LSN { return a.flush }

// CommitLSN is the highest LSN this acceptor knows to be committed.
func (a *Acceptor) CommitLSN() lsn.LSN { return a.commit }

// Term is the promised term.
func (a *Acceptor) Term() Term { return a.state.Term }

// ElectedTerm is the term whose proposer this acceptor follows (0 = none).
func (a *Acceptor) ElectedTerm() Term { return a.elected }

// History is the term history of the WAL held, up to the flush LSN.
func (a *Acceptor) History() TermHistory { return a.state.History.UpTo(a.flush) }

// Step processes one message from the proposer.
func (a *Acceptor) Step(m Msg) (r Ready, err error) {
	if invariants.Enabled {
		prev := a.state.Term
		defer func() { a.assert(prev, r) }()
	}
	switch m := m.(type) {
	case Greeting:
		return Ready{Reply: GreetingResponse{NodeID: a.nodeID, Term: a.state.Term}}, nil
	case VoteRequest:
		return a.vote(m), nil
	case ProposerElected:
		return a.elect(m)
	case AppendRequest:
		return a.appendWAL(m)
	}
	return Ready{}, fmt.Errorf("%w: acceptor cannot handle %T", ErrProtocol, m)
}

func (a *Acceptor) vote(m VoteRequest) Ready {
	var r Ready
	given := false
	if m.Term > a.state.Term {
		a.state.Term = m.Term
		a.elected = 0
		given = true
		r.Persist = !a.bugs.VoteWithoutPersist
	}
	r.State = a.State()
	r.Reply = VoteResponse{
		Term: a.state.Term, VoteGiven: given, FlushLSN: a.flush, CommitLSN: a.commit,
		TruncateLSN: a.commit, History: a.History(),
	}
	return r
}

func (a *Acceptor) elect(m ProposerElected) (Ready, error) {
	if m.Term < a.state.Term {
		return Ready{Reply: a.appendResponse()}, nil
	}
	if m.Term > a.state.Term {
		return Ready{}, fmt.Errorf("%w: elected in term %d without a vote (acceptor term %d)", ErrProtocol, m.Term, a.state.Term)
	}
	if err := m.History.Validate(); err != nil {
		return Ready{}, err
	}
	if m.History.LastTerm() != m.Term {
		return Ready{}, fmt.Errorf("%w: elected history %s does not end in term %d", ErrProtocol, m.History, m.Term)
	}
	mine := a.History()
	lcp := LastCommonPoint(m.History, m.History[len(m.History)-1].LSN, mine, a.flush)
	// The proposer may be further along in its own term than its
	// recorded start (it already streamed to us), so only the start LSN
	// is compared when our last term is the proposer's.
	if mine.LastTerm() == m.Term {
		lcp = min(a.flush, max(lcp, m.StartStreamingAt))
	}
	truncateAt := m.StartStreamingAt
	if a.bugs.TruncateCommitted {
		// Planted bug: cut back to where the last common term began,
		// with no regard for what is committed.
		truncateAt = lastCommonTermStart(m.History, mine, a.state.StartLSN)
	} else {
		if m.StartStreamingAt != lcp {
			return Ready{}, fmt.Errorf("%w: start %s is not the last common point %s", ErrProtocol, m.StartStreamingAt, lcp)
		}
		if truncateAt < a.commit {
			return Ready{}, fmt.Errorf("%w: start %s below commit %s", ErrCommitTruncate, truncateAt, a.commit)
		}
	}
	var r Ready
	if truncateAt < a.flush {
		r.Truncate, r.TruncateLSN = true, truncateAt
		a.flush = truncateAt
	}
	a.commit = min(a.commit, a.flush)
	a.state.History = m.History.Clone()
	a.state.CommitLSN = a.commit
	a.elected = m.Term
	r.Persist = true
	r.State = a.State()
	r.Reply = a.appendResponse()
	return r, nil
}

// lastCommonTermStart is the start LSN of the last term both histories
// share; only the planted TruncateCommitted bug uses it.
func lastCommonTermStart(a, b TermHistory, start lsn.LSN) lsn.LSN {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == 0 {
		return start
	}
	return a[i-1].LSN
}

func (a *Acceptor) appendWAL(m AppendRequest) (Ready, error) {
	if m.Term < a.state.Term {
		return Ready{Reply: a.appendResponse()}, nil
	}
	if m.Term != a.elected {
		return Ready{}, fmt.Errorf("%w: append in term %d before ProposerElected (elected %d)", ErrProtocol, m.Term, a.elected)
	}
	if m.EndLSN < m.BeginLSN || uint64(len(m.WAL)) != uint64(m.EndLSN-m.BeginLSN) {
		return Ready{}, fmt.Errorf("%w: append %s..%s carries %d bytes", ErrProtocol, m.BeginLSN, m.EndLSN, len(m.WAL))
	}
	if len(m.WAL) > MaxAppendWALBytes {
		return Ready{}, fmt.Errorf("%w: append %s..%s carries %d bytes, limit %d", ErrTooLarge, m.BeginLSN, m.EndLSN, len(m.WAL), MaxAppendWALBytes)
	}
	// Only whole valid frames may be acknowledged: start-up finds the end
	// of the WAL by scanning frames, so a damaged or cut frame written
	// here would be acknowledged now and silently gone after a restart.
	if n := ValidPrefix(m.WAL); n != len(m.WAL) {
		return Ready{}, fmt.Errorf("%w: append %s..%s: %w at %s", ErrProtocol, m.BeginLSN, m.EndLSN, ErrFrame, m.BeginLSN+lsn.LSN(n))
	}
	if m.BeginLSN > a.flush {
		return Ready{}, fmt.Errorf("%w: append at %s leaves a gap after flush %s", ErrProtocol, m.BeginLSN, a.flush)
	}
	var r Ready
	if m.EndLSN > a.flush {
		// Within one term WAL is never rewritten, so a resent prefix is
		// skipped rather than compared.
		skip := a.flush - m.BeginLSN
		r.WriteLSN = a.flush
		r.WAL = m.WAL[skip:]
		a.flush = m.EndLSN
	}
	if c := min(m.CommitLSN, a.flush); c > a.commit {
		a.commit = c
	}
	r.State = a.State()
	r.Reply = a.appendResponse()
	return r, nil
}

func (a *Acceptor) appendResponse() AppendResponse {
	return AppendResponse{Term: a.state.Term, FlushLSN: a.flush, CommitLSN: a.commit}
}
