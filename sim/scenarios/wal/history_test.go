package wal

import (
	"errors"
	"testing"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/sim"
)

// TestCheckers feeds crafted histories to the checkers: each invariant's
// checker must fail on its violation and pass on the valid history.
func TestCheckers(t *testing.T) {
	a, b := []byte("p1#1:aaaa"), []byte("p2#1:bbbb")
	frame := func(recs ...[]byte) []byte {
		var out []byte
		for _, r := range recs {
			out = skproto.AppendFrame(out, r)
		}
		return out
	}
	endA := startLSN + lsn.LSN(len(frame(a)))
	for _, tc := range []struct {
		name string
		run  func(h *history) error
		want error
	}{
		{"valid", func(h *history) error {
			h.appended([][]byte{a})
			h.Elected("p1", 1, nil)
			h.Voted("p1", "sk-1", 1)
			h.Committed("p1", 1, endA, startLSN, frame(a))
			h.acked([][]byte{a}, endA, 0)
			if h.err != nil {
				return h.err
			}
			return h.checkFinal(frame(a), endA)
		}, nil},
		{"two winners", func(h *history) error {
			h.Elected("p1", 3, nil)
			h.Elected("p2", 3, nil)
			return h.err
		}, ErrTwoWinners},
		{"double vote", func(h *history) error {
			h.Voted("p1", "sk-1", 3)
			h.Voted("p2", "sk-1", 3)
			return h.err
		}, ErrDoubleVote},
		{"commit backwards", func(h *history) error {
			h.appended([][]byte{a})
			h.Committed("p1", 1, endA, startLSN, frame(a))
			h.Committed("p1", 1, startLSN, startLSN, nil)
			return h.err
		}, ErrCommitBackward},
		{"invented", func(h *history) error {
			h.Committed("p1", 1, endA, startLSN, frame(a))
			return h.err
		}, ErrInvented},
		{"committed WAL changed", func(h *history) error {
			h.appended([][]byte{a, b})
			h.Committed("p1", 1, endA, startLSN, frame(a))
			h.Committed("p2", 2, endA, startLSN, frame(b))
			return h.err
		}, ErrCommitChanged},
		{"lost from final WAL", func(h *history) error {
			h.appended([][]byte{a, b})
			h.Committed("p1", 1, endA, startLSN, frame(a))
			return h.checkFinal(frame(b), endA)
		}, ErrCommitChanged},
		{"acked but missing", func(h *history) error {
			h.appended([][]byte{a})
			h.Committed("p1", 1, endA, startLSN, frame(a))
			h.acked([][]byte{a}, endA, 0)
			h.committed = map[lsn.LSN]string{}
			return h.checkFinal(nil, endA)
		}, ErrLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := sim.New(sim.Options{Seed: 1})
			h := newHistory(w)
			if err := tc.run(h); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
