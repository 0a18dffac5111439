package wal

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/sim"
)

// Checker errors, one per invariant.
var (
	ErrTwoWinners     = errors.New("wal: two proposers won one term")
	ErrDoubleVote     = errors.New("wal: an acceptor voted twice in one term")
	ErrCommitBackward = errors.New("wal: commit LSN went backwards")
	ErrCommitChanged  = errors.New("wal: committed WAL changed")
	ErrInvented       = errors.New("wal: record invented")
	ErrLost           = errors.New("wal: committed record lost")
)

// history is what the checkers know: every record appended, every election
// and commit the proposers reported, every commit a workload saw. The
// simulator runs one task at a time, so it needs no lock.
type history struct {
	w        *sim.World
	computes []*compute
	stopped  bool
	healAt   time.Duration
	err      error

	winners map[skproto.Term]string
	// votes maps "acceptor/term" to the proposer that got the vote.
	votes      map[string]string
	lastCommit map[string]lsn.LSN
	// committed maps the LSN of each committed frame to its payload.
	committed map[lsn.LSN]string
	// payloadAt maps a committed payload to its LSN (records are unique).
	payloadAt map[string]lsn.LSN
	maxCommit lsn.LSN
	appendSet map[string]bool
	// ackedAt maps the LSN of each record a workload saw committed to it.
	ackedAt        map[lsn.LSN]string
	ackedAfterHeal int
	// committedLSNs are frame boundaries of committed WAL (bounded), where
	// the stream reader may start.
	committedLSNs []lsn.LSN
	// servedChunks is committed WAL the safekeepers served (bounded).
	servedChunks []servedChunk
}

func newHistory(w *sim.World) *history {
	return &history{w: w, winners: map[skproto.Term]string{}, votes: map[string]string{}, lastCommit: map[string]lsn.LSN{},
		committed: map[lsn.LSN]string{}, payloadAt: map[string]lsn.LSN{}, maxCommit: startLSN,
		appendSet: map[string]bool{}, ackedAt: map[lsn.LSN]string{}}
}

func (h *history) fail(err error) {
	if h.err == nil {
		h.err = err
		h.w.Fail(err)
	}
}

func (h *history) failure() error { return h.err }

func (h *history) appended(recs [][]byte) {
	for _, r := range recs {
		h.appendSet[string(r)] = true
	}
}

// Elected implements walproposer.Observer.
func (h *history) Elected(id string, term skproto.Term, hist skproto.TermHistory) {
	if prev, ok := h.winners[term]; ok && prev != id {
		h.fail(fmt.Errorf("%w: term %d won by %s and by %s", ErrTwoWinners, term, prev, id))
		return
	}
	h.winners[term] = id
	h.w.Note(uint64(term), uint64(len(hist)))
}

// Voted implements walproposer.Observer: an acceptor promises a term to
// one proposer only, which is what makes the winner of a term unique.
func (h *history) Voted(id, acceptor string, term skproto.Term) {
	k := fmt.Sprintf("%s/%d", acceptor, term)
	if prev, ok := h.votes[k]; ok && prev != id {
		h.fail(fmt.Errorf("%w: %s voted for %s and for %s in term %d", ErrDoubleVote, acceptor, prev, id, term))
		return
	}
	h.votes[k] = id
}

// Committed implements walproposer.Observer.
func (h *history) Committed(id string, term skproto.Term, commit, start lsn.LSN, wal []byte) {
	if last := h.lastCommit[id]; commit < last {
		h.fail(fmt.Errorf("%w: %s (term %d) reported %s after %s", ErrCommitBackward, id, term, commit, last))
		return
	}
	h.lastCommit[id] = commit
	h.maxCommit = max(h.maxCommit, commit)
	frames, err := skproto.SplitFrames(wal)
	if err != nil {
		h.fail(fmt.Errorf("%w: %s reported undecodable WAL at %s: %v", ErrInvented, id, start, err))
		return
	}
	pos := start
	for _, f := range frames {
		if err := h.commitFrame(pos, string(f), id); err != nil {
			h.fail(err)
			return
		}
		pos += lsn.LSN(skproto.FrameHeaderBytes + len(f))
	}
}

func (h *history) commitFrame(pos lsn.LSN, payload, who string) error {
	if !h.appendSet[payload] {
		return fmt.Errorf("%w: %q at %s (reported by %s) was never appended", ErrInvented, short(payload), pos, who)
	}
	if prev, ok := h.committed[pos]; ok && prev != payload {
		return fmt.Errorf("%w: at %s %s reports %q, earlier commit had %q", ErrCommitChanged, pos, who, short(payload), short(prev))
	}
	if at, ok := h.payloadAt[payload]; ok && at != pos {
		return fmt.Errorf("%w: %q committed at %s and at %s", ErrInvented, short(payload), at, pos)
	}
	if _, ok := h.committed[pos]; !ok && len(h.committedLSNs) < maxServedChunks {
		h.committedLSNs = append(h.committedLSNs, pos)
	}
	h.committed[pos] = payload
	h.payloadAt[payload] = pos
	return nil
}

// acked records a batch a workload saw committed (it ends at end).
func (h *history) acked(recs [][]byte, end lsn.LSN, started time.Duration) {
	pos := end
	for i := len(recs) - 1; i >= 0; i-- {
		pos -= lsn.LSN(skproto.FrameHeaderBytes + len(recs[i]))
	}
	for _, r := range recs {
		h.ackedAt[pos] = string(r)
		if got, ok := h.committed[pos]; !ok || got != string(r) {
			h.fail(fmt.Errorf("%w: %q acknowledged at %s but the commit reports hold %q", ErrLost, short(string(r)), pos, short(got)))
			return
		}
		pos += lsn.LSN(skproto.FrameHeaderBytes + len(r))
	}
	if started >= h.healAt && h.healAt > 0 {
		h.ackedAfterHeal++
	}
}

func (h *history) progressedSinceHeal() bool { return h.ackedAfterHeal > 0 }

func (h *history) progress() string {
	var b strings.Builder
	fmt.Fprintf(&b, "max commit %s, %d acked, %d elections", h.maxCommit, len(h.ackedAt), len(h.winners))
	return b.String()
}

// checkFinal compares the final committed WAL [startLSN, commit) with the
// history: every frame was appended and appears once, every frame any
// proposer reported committed is there unchanged, every acknowledged
// record is there.
func (h *history) checkFinal(wal []byte, commit lsn.LSN) error {
	frames, err := skproto.SplitFrames(wal)
	if err != nil {
		return fmt.Errorf("%w: final WAL does not decode: %v", ErrInvented, err)
	}
	final := map[lsn.LSN]string{}
	pos := startLSN
	for _, f := range frames {
		if err := h.commitFrame(pos, string(f), "final WAL"); err != nil {
			return err
		}
		final[pos] = string(f)
		pos += lsn.LSN(skproto.FrameHeaderBytes + len(f))
	}
	for _, at := range slices.Sorted(maps.Keys(h.committed)) {
		if at < commit && final[at] != h.committed[at] {
			return fmt.Errorf("%w: %q committed at %s is not in the final WAL", ErrLost, short(h.committed[at]), at)
		}
	}
	// Workloads still finishing after the audit began may ack records past
	// the commit LSN it read; those are checked when acknowledged.
	for _, at := range slices.Sorted(maps.Keys(h.ackedAt)) {
		if at < commit && final[at] != h.ackedAt[at] {
			return fmt.Errorf("%w: acknowledged %q at %s is not in the final WAL (commit %s, final has %q)", ErrLost, short(h.ackedAt[at]), at, commit, short(final[at]))
		}
	}
	return nil
}

func short(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}
