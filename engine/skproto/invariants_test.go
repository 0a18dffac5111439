package skproto

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/lsn"
)

// expectViolation runs fn and checks that an assertion fired with a
// message containing want — a panic wrapping invariants.ErrViolated when
// assertions are on (go test, the simulator), nothing in a release build,
// where the checks are compiled away.
func expectViolation(t *testing.T, want string, fn func()) {
	t.Helper()
	var got any
	func() {
		defer func() { got = recover() }()
		fn()
	}()
	if !invariants.Enabled {
		if got != nil {
			t.Fatalf("assertions are compiled out, yet %v", got)
		}
		return
	}
	err, ok := got.(error)
	if !ok || !errors.Is(err, invariants.ErrViolated) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v (%T), want a panic with an ErrViolated naming %q", got, got, want)
	}
}

func electedProposer(t *testing.T) *Proposer {
	t.Helper()
	const start = lsn.LSN(0x100)
	accs := []string{"a", "b", "c"}
	p, err := NewProposer(ProposerConfig{ID: "p", StartLSN: start, Acceptors: accs, MaxAppendBytes: 64, MaxInflightBytes: 256,
		MaxBufferBytes: 128, MaxRecoverBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range accs {
		if _, err := p.Connect(id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range accs {
		if _, err := p.Step(id, GreetingResponse{NodeID: id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range accs {
		if _, err := p.Step(id, VoteResponse{Term: 1, VoteGiven: true, FlushLSN: start, CommitLSN: start}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range accs {
		if _, err := p.Step(id, AppendResponse{Term: 1, FlushLSN: start, CommitLSN: start}); err != nil {
			t.Fatal(err)
		}
	}
	if !p.Elected() {
		t.Fatal("not elected")
	}
	return p
}

// TestStepMachineAssertionsFire feeds deliberately corrupted state to the
// step machines: the next step's postcondition check must catch each
// corruption, and a healthy run trips none (the other tests).
func TestStepMachineAssertionsFire(t *testing.T) {
	t.Run("acceptor commit above flush", func(t *testing.T) {
		a := electedAcceptor(t, 0x100)
		a.commit = a.flush + 8
		expectViolation(t, "commit 0/108 above flush 0/100", func() { _, _ = a.Step(Greeting{ProposerID: "p"}) })
	})
	t.Run("acceptor term went back", func(t *testing.T) {
		a := electedAcceptor(t, 0x100)
		expectViolation(t, "term went back from 9 to 1", func() { a.assert(9, Ready{}) })
	})
	t.Run("acceptor history invalid after election", func(t *testing.T) {
		a := electedAcceptor(t, 0x100)
		a.state.History = TermHistory{{Term: 1, LSN: 0x100}, {Term: 1, LSN: 0x100}}
		expectViolation(t, "term history out of order", func() { _, _ = a.Step(VoteRequest{Term: 1}) })
	})
	t.Run("acceptor follows a term it did not promise", func(t *testing.T) {
		a := electedAcceptor(t, 0x100)
		a.elected = 2
		expectViolation(t, "follows term 2, promised 1", func() { _, _ = a.Step(Greeting{ProposerID: "p"}) })
	})
	t.Run("proposer buffer out of step", func(t *testing.T) {
		p := electedProposer(t)
		p.end += 5
		expectViolation(t, "buffer [0/100, 0/105) holds 0 bytes", func() { p.Disconnect("c") })
	})
	t.Run("proposer commit above its WAL", func(t *testing.T) {
		p := electedProposer(t)
		p.commit = p.end + 1
		expectViolation(t, "commit 0/101 above the end of its WAL 0/100", func() { p.Disconnect("c") })
	})
	t.Run("proposer history invalid after election", func(t *testing.T) {
		p := electedProposer(t)
		p.history = TermHistory{{Term: 1, LSN: 0x100}, {Term: 2, LSN: 0x100}}
		expectViolation(t, "elected in term 1 at 0/100", func() { _, _ = p.Step("a", AppendResponse{Term: 1, FlushLSN: 0x100}) })
	})
	t.Run("proposer buffer over its bound after Trim", func(t *testing.T) {
		p := electedProposer(t)
		for i := range 10 {
			end, outs, err := p.Append([][]byte{fmt.Appendf(nil, "record %02d %s", i, strings.Repeat("x", 20))})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range outs {
				if o.To == "c" {
					continue // c lags: its WAL stays buffered
				}
				if _, err := p.Step(o.To, AppendResponse{Term: 1, FlushLSN: o.Msg.(AppendRequest).EndLSN}); err != nil {
					t.Fatal(err)
				}
			}
			if p.CommitLSN() != end {
				t.Fatalf("commit %s, want %s", p.CommitLSN(), end)
			}
		}
		// The state a Trim that kept committed WAL over the bound would
		// leave behind.
		expectViolation(t, "buffer holds 380 bytes over MaxBufferBytes 128 below commit 0/27C (from 0/100)", func() {
			p.assertTrimmed(p.term, p.commit)
		})
		p.Trim() // the real one meets the bound
		if held := int(p.EndLSN() - p.BufferStart()); held > 128 {
			t.Fatalf("Trim left %d bytes", held)
		}
	})
}
