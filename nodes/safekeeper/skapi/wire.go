package safekeeper

import (
	"fmt"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/safekeeper/skpb"
)

// Full method names (from the generated stubs).
const (
	MethodPropose   = skpb.Safekeeper_Propose_FullMethodName
	MethodReadWal   = skpb.Safekeeper_ReadWal_FullMethodName
	MethodStreamWal = skpb.Safekeeper_StreamWal_FullMethodName
	MethodStatus    = skpb.Safekeeper_Status_FullMethodName
)

// HistoryToPB converts a term history to wire form.
func HistoryToPB(h skproto.TermHistory) []*skpb.TermSwitch {
	out := make([]*skpb.TermSwitch, len(h))
	for i, s := range h {
		out[i] = &skpb.TermSwitch{Term: uint64(s.Term), Lsn: uint64(s.LSN)}
	}
	return out
}

// HistoryFromPB converts a wire term history.
func HistoryFromPB(h []*skpb.TermSwitch) skproto.TermHistory {
	out := make(skproto.TermHistory, len(h))
	for i, s := range h {
		out[i] = skproto.TermSwitch{Term: skproto.Term(s.GetTerm()), LSN: lsn.LSN(s.GetLsn())}
	}
	return out
}

// ProposerToPB wraps a proposer→acceptor message.
func ProposerToPB(m skproto.Msg) (*skpb.ProposerMessage, error) {
	switch m := m.(type) {
	case skproto.Greeting:
		return &skpb.ProposerMessage{Msg: &skpb.ProposerMessage_Greeting{Greeting: &skpb.Greeting{
			ProposerId: m.ProposerID, TenantId: m.TenantID, TimelineId: m.TimelineID, StartLsn: uint64(m.StartLSN)}}}, nil
	case skproto.VoteRequest:
		return &skpb.ProposerMessage{Msg: &skpb.ProposerMessage_Vote{Vote: &skpb.VoteRequest{Term: uint64(m.Term)}}}, nil
	case skproto.ProposerElected:
		return &skpb.ProposerMessage{Msg: &skpb.ProposerMessage_Elected{Elected: &skpb.ProposerElected{
			Term: uint64(m.Term), StartStreamingAt: uint64(m.StartStreamingAt), TermHistory: HistoryToPB(m.History)}}}, nil
	case skproto.AppendRequest:
		return &skpb.ProposerMessage{Msg: &skpb.ProposerMessage_Append{Append: &skpb.AppendRequest{
			Term: uint64(m.Term), BeginLsn: uint64(m.BeginLSN), EndLsn: uint64(m.EndLSN),
			CommitLsn: uint64(m.CommitLSN), TruncateLsn: uint64(m.TruncateLSN), Wal: m.WAL}}}, nil
	}
	return nil, fmt.Errorf("safekeeper: %T is not a proposer message", m)
}

// ProposerFromPB unwraps a proposer→acceptor message.
func ProposerFromPB(m *skpb.ProposerMessage) (skproto.Msg, error) {
	switch v := m.GetMsg().(type) {
	case *skpb.ProposerMessage_Greeting:
		g := v.Greeting
		return skproto.Greeting{ProposerID: g.GetProposerId(), TenantID: g.GetTenantId(), TimelineID: g.GetTimelineId(), StartLSN: lsn.LSN(g.GetStartLsn())}, nil
	case *skpb.ProposerMessage_Vote:
		return skproto.VoteRequest{Term: skproto.Term(v.Vote.GetTerm())}, nil
	case *skpb.ProposerMessage_Elected:
		e := v.Elected
		return skproto.ProposerElected{Term: skproto.Term(e.GetTerm()), StartStreamingAt: lsn.LSN(e.GetStartStreamingAt()), History: HistoryFromPB(e.GetTermHistory())}, nil
	case *skpb.ProposerMessage_Append:
		a := v.Append
		return skproto.AppendRequest{Term: skproto.Term(a.GetTerm()), BeginLSN: lsn.LSN(a.GetBeginLsn()), EndLSN: lsn.LSN(a.GetEndLsn()),
			CommitLSN: lsn.LSN(a.GetCommitLsn()), TruncateLSN: lsn.LSN(a.GetTruncateLsn()), WAL: a.GetWal()}, nil
	}
	return nil, net.Errorf(net.InvalidArgument, "safekeeper: empty proposer message")
}

// AcceptorToPB wraps an acceptor→proposer message.
func AcceptorToPB(m skproto.Msg) (*skpb.AcceptorMessage, error) {
	switch m := m.(type) {
	case skproto.GreetingResponse:
		return &skpb.AcceptorMessage{Msg: &skpb.AcceptorMessage_Greeting{Greeting: &skpb.GreetingResponse{NodeId: m.NodeID, Term: uint64(m.Term)}}}, nil
	case skproto.VoteResponse:
		return &skpb.AcceptorMessage{Msg: &skpb.AcceptorMessage_Vote{Vote: &skpb.VoteResponse{
			Term: uint64(m.Term), VoteGiven: m.VoteGiven, FlushLsn: uint64(m.FlushLSN), TruncateLsn: uint64(m.TruncateLSN),
			CommitLsn: uint64(m.CommitLSN), TermHistory: HistoryToPB(m.History)}}}, nil
	case skproto.AppendResponse:
		return &skpb.AcceptorMessage{Msg: &skpb.AcceptorMessage_Append{Append: &skpb.AppendResponse{
			Term: uint64(m.Term), FlushLsn: uint64(m.FlushLSN), CommitLsn: uint64(m.CommitLSN)}}}, nil
	}
	return nil, fmt.Errorf("safekeeper: %T is not an acceptor message", m)
}

// AcceptorFromPB unwraps an acceptor→proposer message.
func AcceptorFromPB(m *skpb.AcceptorMessage) (skproto.Msg, error) {
	switch v := m.GetMsg().(type) {
	case *skpb.AcceptorMessage_Greeting:
		return skproto.GreetingResponse{NodeID: v.Greeting.GetNodeId(), Term: skproto.Term(v.Greeting.GetTerm())}, nil
	case *skpb.AcceptorMessage_Vote:
		r := v.Vote
		return skproto.VoteResponse{Term: skproto.Term(r.GetTerm()), VoteGiven: r.GetVoteGiven(), FlushLSN: lsn.LSN(r.GetFlushLsn()),
			TruncateLSN: lsn.LSN(r.GetTruncateLsn()), CommitLSN: lsn.LSN(r.GetCommitLsn()), History: HistoryFromPB(r.GetTermHistory())}, nil
	case *skpb.AcceptorMessage_Append:
		r := v.Append
		return skproto.AppendResponse{Term: skproto.Term(r.GetTerm()), FlushLSN: lsn.LSN(r.GetFlushLsn()), CommitLSN: lsn.LSN(r.GetCommitLsn())}, nil
	}
	return nil, net.Errorf(net.InvalidArgument, "safekeeper: empty acceptor message")
}
