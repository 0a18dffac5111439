package skproto

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stratadb/strata/engine/lsn"
)

// randomRun drives acceptors and competing proposers through a random
// schedule: per-link FIFO delivery, broken links (the proposer reconnects),
// acceptor crashes (restart from the durable state), new proposers and
// appends. It returns the first invariant violation:
//   - one winner per term;
//   - committed WAL never changes (bytes by LSN, from every proposer);
//   - committed WAL is durable on a majority of acceptors;
//   - no acceptor refuses a correct proposer (no protocol error at all
//     without planted bugs).
//
// randomStats tells the test that the schedules did real work.
type randomStats struct {
	elections int
	committed lsn.LSN
}

func randomRun(seed uint64, bugs Bugs, steps int, st *randomStats) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	e := &env{start: 16, accs: map[string]*memAcceptor{}, props: map[string]*Proposer{}, bugs: bugs}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("a%d", i)
		e.accs[name] = &memAcceptor{state: AcceptorState{StartLSN: e.start}}
		e.accOrder = append(e.accOrder, name)
		a, err := NewAcceptor(name, e.accs[name].state, e.start, bugs)
		if err != nil {
			return err
		}
		e.accs[name].acc = a
	}
	winners := map[Term]string{}
	lastCommit := map[string]lsn.LSN{}
	var model []byte // committed bytes from e.start
	var known []bool
	committed := e.start
	connected := map[[2]string]bool{}

	newProposer := func() {
		name := fmt.Sprintf("p%d", len(e.propOrder)+1)
		p, err := NewProposer(ProposerConfig{ID: name, StartLSN: e.start, Acceptors: e.accOrder,
			MaxAppendBytes: 48, MaxInflightBytes: 160, MaxBufferBytes: 96, MaxRecoverBytes: 64, Bugs: bugs})
		if err != nil {
			panic(err)
		}
		e.props[name] = p
		e.propOrder = append(e.propOrder, name)
		for _, a := range e.accOrder {
			outs, _ := p.Connect(a)
			e.send(name, outs)
			connected[[2]string{name, a}] = true
		}
	}
	breakLink := func(p, a string) {
		kept := e.queue[:0]
		for _, ev := range e.queue {
			if (ev.from == p && ev.to == a) || (ev.from == a && ev.to == p) {
				continue
			}
			kept = append(kept, ev)
		}
		e.queue = kept
		e.props[p].Disconnect(a)
		connected[[2]string{p, a}] = false
	}
	observe := func(name string) error {
		p := e.props[name]
		if p.Elected() {
			if w, ok := winners[p.Term()]; ok && w != name {
				return fmt.Errorf("term %d won by %s and %s", p.Term(), w, name)
			}
			winners[p.Term()] = name
		}
		c := p.CommitLSN()
		if c > lastCommit[name] {
			from := max(lastCommit[name], p.BufferStart(), e.start)
			if data, ok := p.ReadBuffered(from, c); ok {
				for i, b := range data {
					off := int(from-e.start) + i
					for len(model) <= off {
						model, known = append(model, 0), append(known, false)
					}
					if known[off] && model[off] != b {
						return fmt.Errorf("%w: %s changed committed byte at %s", errCommittedViolated, name, e.start+lsn.LSN(off))
					}
					model[off], known[off] = b, true
				}
			}
			lastCommit[name] = c
			committed = max(committed, c)
		}
		p.Trim()
		return nil
	}
	durableOnMajority := func() error {
		n := 0
		for _, a := range e.accOrder {
			wal := e.accs[a].wal
			if e.start+lsn.LSN(len(wal)) < committed {
				continue
			}
			ok := true
			for off := 0; off < int(committed-e.start) && off < len(known); off++ {
				if known[off] && wal[off] != model[off] {
					ok = false
					break
				}
			}
			if ok {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("%w: committed %s held by %d acceptors", errCommittedViolated, committed, n)
		}
		return nil
	}

	newProposer()
	for step := 0; step < steps; step++ {
		switch r := rng.IntN(100); {
		case r < 60 && len(e.queue) > 0:
			// Deliver the head of a random link.
			var heads []int
			seen := map[[2]string]bool{}
			for i, ev := range e.queue {
				k := [2]string{ev.from, ev.to}
				if !seen[k] {
					seen[k] = true
					heads = append(heads, i)
				}
			}
			i := heads[rng.IntN(len(heads))]
			ev := e.queue[i]
			e.queue = append(e.queue[:i:i], e.queue[i+1:]...)
			if m, ok := e.accs[ev.to]; ok {
				rd, err := m.acc.Step(ev.msg)
				if err != nil {
					if bugs == (Bugs{}) {
						return fmt.Errorf("%s refused %s from %s: %w", ev.to, Format(ev.msg), ev.from, err)
					}
					breakLink(ev.from, ev.to)
					continue
				}
				var discard stringsDiscard
				e.apply(ev.to, rd, &discard.b)
				if rd.Reply != nil {
					e.queue = append(e.queue, envelope{from: ev.to, to: ev.from, msg: rd.Reply})
				}
				continue
			}
			outs, err := e.props[ev.to].Step(ev.from, ev.msg)
			if err != nil && !errors.Is(err, ErrDefeated) {
				return fmt.Errorf("%s: %w", ev.to, err)
			}
			e.send(ev.to, outs)
			if err := observe(ev.to); err != nil {
				return err
			}
		case r < 72:
			p := e.props[e.propOrder[rng.IntN(len(e.propOrder))]]
			recs := make([][]byte, 1+rng.IntN(3))
			for i := range recs {
				e.seq++
				recs[i] = []byte(fmt.Sprintf("r%d", e.seq))
			}
			if _, outs, err := p.Append(recs); err == nil {
				e.send(p.cfg.ID, outs)
			}
		case r < 78:
			p, a := e.propOrder[rng.IntN(len(e.propOrder))], e.accOrder[rng.IntN(len(e.accOrder))]
			breakLink(p, a)
		case r < 81:
			a := e.accOrder[rng.IntN(len(e.accOrder))]
			for _, p := range e.propOrder {
				breakLink(p, a)
			}
			m := e.accs[a]
			acc, err := NewAcceptor(a, m.state, e.start+lsn.LSN(len(m.wal)), bugs)
			if err != nil {
				return fmt.Errorf("restart %s: %w", a, err)
			}
			m.acc = acc
		case r < 83 && len(e.propOrder) < 4:
			newProposer()
		default:
			p, a := e.propOrder[rng.IntN(len(e.propOrder))], e.accOrder[rng.IntN(len(e.accOrder))]
			if !connected[[2]string{p, a}] && !e.props[p].Defeated() {
				outs, _ := e.props[p].Connect(a)
				e.send(p, outs)
				connected[[2]string{p, a}] = true
			}
			// A missing WAL range is served by the acceptor named.
			if need, ok := e.props[p].MissingWAL(); ok {
				src := e.accs[need.From]
				if need.End <= e.start+lsn.LSN(len(src.wal)) && src.acc.Term() == e.props[p].Term() {
					outs, err := e.props[p].Recovered(need.Start, readWindow(src.wal, e.start, need))
					if err != nil {
						return err
					}
					e.send(p, outs)
				}
			}
		}
		if err := durableOnMajority(); err != nil {
			return err
		}
	}
	st.elections += len(winners)
	st.committed += committed - e.start
	return nil
}

// errCommittedViolated classifies committed-WAL violations in randomRun.
var errCommittedViolated = errors.New("committed WAL violated")

type stringsDiscard struct{ b strings.Builder }

func TestRandomSchedules(t *testing.T) {
	var st randomStats
	for seed := uint64(1); seed <= 1000; seed++ {
		if err := randomRun(seed, Bugs{}, 1000, &st); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	// The schedules must exercise elections and commits, or the checks
	// above prove nothing.
	if st.elections < 2000 || st.committed < 1000*100 {
		t.Fatalf("schedules too idle: %d elections, %d bytes committed over 1000 seeds", st.elections, st.committed)
	}
	t.Logf("%d elections, %d bytes committed", st.elections, st.committed)
}

func TestRandomSchedulesCatchBugs(t *testing.T) {
	for _, tc := range []struct {
		name string
		bugs Bugs
	}{
		{"vote without persist", Bugs{VoteWithoutPersist: true}},
		{"truncate committed", Bugs{TruncateCommitted: true}},
		{"commit without quorum", Bugs{CommitWithoutQuorum: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 300; seed++ {
				if err := randomRun(seed, tc.bugs, 600, &randomStats{}); err != nil {
					t.Logf("caught at seed %d: %v", seed, err)
					return
				}
			}
			t.Fatal("bug not caught in 300 random schedules")
		})
	}
}
