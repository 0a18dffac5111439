package skapi

import (
	"errors"
	"fmt"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
)

// Errors of the conversions.
var (
	// ErrBadMessage reports a wire message that carries no known variant.
	ErrBadMessage = errors.New("skapi: malformed message")
	// ErrNotWireMessage reports a skproto message that has no place in the
	// direction asked for (a programming error).
	ErrNotWireMessage = errors.New("skapi: message has no wire form in this direction")
)

// Full method names (from the generated stubs).
const (
	MethodPropose   = Safekeeper_Propose_FullMethodName
	MethodReadWal   = Safekeeper_ReadWal_FullMethodName
	MethodStreamWal = Safekeeper_StreamWal_FullMethodName
	MethodStatus    = Safekeeper_Status_FullMethodName
)

// HistoryToPB converts a term history to wire form.
func HistoryToPB(h skproto.TermHistory) []*TermSwitch {
	out := make([]*TermSwitch, len(h))
	for i, s := range h {
		out[i] = &TermSwitch{Term: uint64(s.Term), Lsn: uint64(s.LSN)}
	}
	return out
}

// HistoryFromPB converts a wire term history.
func HistoryFromPB(h []*TermSwitch) skproto.TermHistory {
	out := make(skproto.TermHistory, len(h))
	for i, s := range h {
		out[i] = skproto.TermSwitch{Term: skproto.Term(s.GetTerm()), LSN: lsn.LSN(s.GetLsn())}
	}
	return out
}

// ProposerToPB wraps a proposer→acceptor message.
func ProposerToPB(m skproto.Msg) (*ProposerMessage, error) {
	switch m := m.(type) {
	case skproto.Greeting:
		return &ProposerMessage{Msg: &ProposerMessage_Greeting{Greeting: &Greeting{
			ProposerId: m.ProposerID, TenantId: m.TenantID, TimelineId: m.TimelineID, StartLsn: uint64(m.StartLSN)}}}, nil
	case skproto.VoteRequest:
		return &ProposerMessage{Msg: &ProposerMessage_Vote{Vote: &VoteRequest{Term: uint64(m.Term)}}}, nil
	case skproto.ProposerElected:
		return &ProposerMessage{Msg: &ProposerMessage_Elected{Elected: &ProposerElected{
			Term: uint64(m.Term), StartStreamingAt: uint64(m.StartStreamingAt), TermHistory: HistoryToPB(m.History)}}}, nil
	case skproto.AppendRequest:
		return &ProposerMessage{Msg: &ProposerMessage_Append{Append: &AppendRequest{
			Term: uint64(m.Term), BeginLsn: uint64(m.BeginLSN), EndLsn: uint64(m.EndLSN),
			CommitLsn: uint64(m.CommitLSN), TruncateLsn: uint64(m.TruncateLSN), Wal: m.WAL}}}, nil
	}
	return nil, fmt.Errorf("%w: %T is not a proposer message", ErrNotWireMessage, m)
}

// ProposerFromPB unwraps a proposer→acceptor message.
func ProposerFromPB(m *ProposerMessage) (skproto.Msg, error) {
	switch v := m.GetMsg().(type) {
	case *ProposerMessage_Greeting:
		g := v.Greeting
		return skproto.Greeting{ProposerID: g.GetProposerId(), TenantID: g.GetTenantId(), TimelineID: g.GetTimelineId(), StartLSN: lsn.LSN(g.GetStartLsn())}, nil
	case *ProposerMessage_Vote:
		return skproto.VoteRequest{Term: skproto.Term(v.Vote.GetTerm())}, nil
	case *ProposerMessage_Elected:
		e := v.Elected
		return skproto.ProposerElected{Term: skproto.Term(e.GetTerm()), StartStreamingAt: lsn.LSN(e.GetStartStreamingAt()), History: HistoryFromPB(e.GetTermHistory())}, nil
	case *ProposerMessage_Append:
		a := v.Append
		return skproto.AppendRequest{Term: skproto.Term(a.GetTerm()), BeginLSN: lsn.LSN(a.GetBeginLsn()), EndLSN: lsn.LSN(a.GetEndLsn()),
			CommitLSN: lsn.LSN(a.GetCommitLsn()), TruncateLSN: lsn.LSN(a.GetTruncateLsn()), WAL: a.GetWal()}, nil
	}
	return nil, fmt.Errorf("%w: empty proposer message", ErrBadMessage)
}

// AcceptorToPB wraps an acceptor→proposer message.
func AcceptorToPB(m skproto.Msg) (*AcceptorMessage, error) {
	switch m := m.(type) {
	case skproto.GreetingResponse:
		return &AcceptorMessage{Msg: &AcceptorMessage_Greeting{Greeting: &GreetingResponse{NodeId: m.NodeID, Term: uint64(m.Term)}}}, nil
	case skproto.VoteResponse:
		return &AcceptorMessage{Msg: &AcceptorMessage_Vote{Vote: &VoteResponse{
			Term: uint64(m.Term), VoteGiven: m.VoteGiven, FlushLsn: uint64(m.FlushLSN), TruncateLsn: uint64(m.TruncateLSN),
			CommitLsn: uint64(m.CommitLSN), TermHistory: HistoryToPB(m.History)}}}, nil
	case skproto.AppendResponse:
		return &AcceptorMessage{Msg: &AcceptorMessage_Append{Append: &AppendResponse{
			Term: uint64(m.Term), FlushLsn: uint64(m.FlushLSN), CommitLsn: uint64(m.CommitLSN)}}}, nil
	}
	return nil, fmt.Errorf("%w: %T is not an acceptor message", ErrNotWireMessage, m)
}

// AcceptorFromPB unwraps an acceptor→proposer message.
func AcceptorFromPB(m *AcceptorMessage) (skproto.Msg, error) {
	switch v := m.GetMsg().(type) {
	case *AcceptorMessage_Greeting:
		return skproto.GreetingResponse{NodeID: v.Greeting.GetNodeId(), Term: skproto.Term(v.Greeting.GetTerm())}, nil
	case *AcceptorMessage_Vote:
		r := v.Vote
		return skproto.VoteResponse{Term: skproto.Term(r.GetTerm()), VoteGiven: r.GetVoteGiven(), FlushLSN: lsn.LSN(r.GetFlushLsn()),
			TruncateLSN: lsn.LSN(r.GetTruncateLsn()), CommitLSN: lsn.LSN(r.GetCommitLsn()), History: HistoryFromPB(r.GetTermHistory())}, nil
	case *AcceptorMessage_Append:
		r := v.Append
		return skproto.AppendResponse{Term: skproto.Term(r.GetTerm()), FlushLSN: lsn.LSN(r.GetFlushLsn()), CommitLSN: lsn.LSN(r.GetCommitLsn())}, nil
	}
	return nil, fmt.Errorf("%w: empty acceptor message", ErrBadMessage)
}
