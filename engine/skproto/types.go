package skproto

import (
	"errors"
	"fmt"
	"strings"

	"github.com/stratadb/strata/engine/lsn"
)

// Term is a proposer's election term. Term 0 means "never voted".
type Term uint64

// TermSwitch records that WAL written in Term starts at LSN.
type TermSwitch struct {
	Term Term
	LSN  lsn.LSN
}

// TermHistory lists the terms of the WAL an acceptor or proposer holds, in
// increasing term and non-decreasing LSN order.
type TermHistory []TermSwitch

// Errors. Every error the step machines return wraps one of these.
var (
	// ErrProtocol reports a message that violates the protocol (a gap in
	// WAL, an append before election, a bad start point). The shell should
	// break the connection; the proposer reconnects and re-elects.
	ErrProtocol = errors.New("skproto: protocol violation")
	// ErrCommitTruncate reports a request to truncate below the commit LSN.
	ErrCommitTruncate = errors.New("skproto: refusing to truncate committed WAL")
	// ErrCorrupt reports state that contradicts itself (flush below commit).
	ErrCorrupt = errors.New("skproto: inconsistent state")
)

// LastTerm returns the term of the last entry, or 0.
func (h TermHistory) LastTerm() Term {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].Term
}

// UpTo returns the entries that start at or below end: the history of the
// WAL up to end. The result shares no memory with h.
func (h TermHistory) UpTo(end lsn.LSN) TermHistory {
	out := make(TermHistory, 0, len(h))
	for _, s := range h {
		if s.LSN > end {
			break
		}
		out = append(out, s)
	}
	return out
}

// Clone returns a copy of h.
func (h TermHistory) Clone() TermHistory { return append(TermHistory(nil), h...) }

// Validate checks ordering: terms strictly increase, LSNs never decrease.
func (h TermHistory) Validate() error {
	for i := 1; i < len(h); i++ {
		if h[i].Term <= h[i-1].Term || h[i].LSN < h[i-1].LSN {
			return fmt.Errorf("%w: term history out of order: %v", ErrProtocol, h)
		}
	}
	return nil
}

func (h TermHistory) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range h {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d@%s", s.Term, s.LSN)
	}
	b.WriteByte(']')
	return b.String()
}

// LastCommonPoint returns the highest LSN up to which the WAL described by
// (a, aEnd) and (b, bEnd) is identical: both histories agree on a prefix of
// entries, and within the last agreed term the shorter WAL wins. When no
// entry agrees, the WAL agrees only up to the timeline start, which is the
// first entry's LSN (or the end of an empty WAL).
func LastCommonPoint(a TermHistory, aEnd lsn.LSN, b TermHistory, bEnd lsn.LSN) lsn.LSN {
	a, b = a.UpTo(aEnd), b.UpTo(bEnd)
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == 0 {
		switch {
		case len(a) == 0 && len(b) == 0:
			return min(aEnd, bEnd)
		case len(a) == 0:
			return min(aEnd, b[0].LSN)
		case len(b) == 0:
			return min(bEnd, a[0].LSN)
		}
		return min(a[0].LSN, b[0].LSN)
	}
	endA, endB := aEnd, bEnd
	if i < len(a) {
		endA = a[i].LSN
	}
	if i < len(b) {
		endB = b[i].LSN
	}
	return min(endA, endB)
}

// Msg is one protocol message. The concrete types below are the whole set.
type Msg interface{ msgName() string }

// Greeting opens a proposer's conversation with an acceptor.
type Greeting struct {
	ProposerID string
	TenantID   string
	TimelineID string
	// StartLSN is where the timeline's WAL begins (used when the acceptor
	// creates the timeline on first greeting).
	StartLSN lsn.LSN
}

// GreetingResponse carries the acceptor's current term.
type GreetingResponse struct {
	NodeID string
	Term   Term
}

// VoteRequest asks for a vote in Term.
type VoteRequest struct{ Term Term }

// VoteResponse answers a VoteRequest with what the proposer needs to pick a
// donor and compute start points.
type VoteResponse struct {
	Term        Term
	VoteGiven   bool
	FlushLSN    lsn.LSN
	TruncateLSN lsn.LSN
	CommitLSN   lsn.LSN
	History     TermHistory
}

// ProposerElected tells an acceptor the elected proposer's history and where
// streaming to it starts.
type ProposerElected struct {
	Term             Term
	StartStreamingAt lsn.LSN
	History          TermHistory
}

// AppendRequest carries WAL [BeginLSN, EndLSN) (possibly empty, as a commit
// heartbeat) and the proposer's commit LSN.
type AppendRequest struct {
	Term        Term
	BeginLSN    lsn.LSN
	EndLSN      lsn.LSN
	CommitLSN   lsn.LSN
	TruncateLSN lsn.LSN
	WAL         []byte
}

// AppendResponse acknowledges WAL flushed (synced) up to FlushLSN. A Term
// above the proposer's means the proposer has been deposed.
type AppendResponse struct {
	Term      Term
	FlushLSN  lsn.LSN
	CommitLSN lsn.LSN
}

func (Greeting) msgName() string         { return "Greeting" }
func (GreetingResponse) msgName() string { return "GreetingResponse" }
func (VoteRequest) msgName() string      { return "VoteRequest" }
func (VoteResponse) msgName() string     { return "VoteResponse" }
func (ProposerElected) msgName() string  { return "ProposerElected" }
func (AppendRequest) msgName() string    { return "AppendRequest" }
func (AppendResponse) msgName() string   { return "AppendResponse" }

// Format renders a message on one line for transcripts and logs.
func Format(m Msg) string {
	switch m := m.(type) {
	case Greeting:
		return fmt.Sprintf("Greeting{proposer=%s start=%s}", m.ProposerID, m.StartLSN)
	case GreetingResponse:
		return fmt.Sprintf("GreetingResponse{node=%s term=%d}", m.NodeID, m.Term)
	case VoteRequest:
		return fmt.Sprintf("VoteRequest{term=%d}", m.Term)
	case VoteResponse:
		return fmt.Sprintf("VoteResponse{term=%d given=%t flush=%s commit=%s history=%s}",
			m.Term, m.VoteGiven, m.FlushLSN, m.CommitLSN, m.History)
	case ProposerElected:
		return fmt.Sprintf("ProposerElected{term=%d start=%s history=%s}", m.Term, m.StartStreamingAt, m.History)
	case AppendRequest:
		return fmt.Sprintf("AppendRequest{term=%d %s..%s commit=%s bytes=%d}", m.Term, m.BeginLSN, m.EndLSN, m.CommitLSN, len(m.WAL))
	case AppendResponse:
		return fmt.Sprintf("AppendResponse{term=%d flush=%s commit=%s}", m.Term, m.FlushLSN, m.CommitLSN)
	}
	return fmt.Sprintf("%T", m)
}

// Bugs are deliberate defects the simulator plants in the step machines to
// prove its checkers can fail. Production code always passes the zero value.
// Only defects these machines honour are listed; a shell's own defects
// belong to the shell (nodes/safekeeper.Bugs).
type Bugs struct {
	// VoteWithoutPersist: the acceptor grants a vote without persisting the
	// new term first (sk-vote-without-persist).
	VoteWithoutPersist bool
	// TruncateCommitted: the acceptor truncates to the start of the last
	// common term instead of the last common point, ignoring its commit LSN
	// (sk-truncate-committed).
	TruncateCommitted bool
	// CommitWithoutQuorum: the proposer treats the highest flush of any
	// acceptor as committed (prop-commit-without-quorum).
	CommitWithoutQuorum bool
}
