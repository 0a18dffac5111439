package skproto

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/stratadb/strata/engine/lsn"
)

// env is the transcript harness: in-memory acceptors whose every Ready is
// applied durably at once, proposers, and a FIFO network the transcript
// delivers from explicitly.
type env struct {
	start     lsn.LSN
	accs      map[string]*memAcceptor
	accOrder  []string
	props     map[string]*Proposer
	propOrder []string
	queue     []envelope
	bugs      Bugs
	seq       int
}

type envelope struct {
	from, to string
	msg      Msg
}

type memAcceptor struct {
	acc   *Acceptor
	state AcceptorState // durable control file
	wal   []byte        // durable WAL from start
}

func (e *env) restart(t testing.TB, name string) {
	m := e.accs[name]
	a, err := NewAcceptor(name, m.state, e.start+lsn.LSN(len(m.wal)), e.bugs)
	if err != nil {
		t.Fatalf("restart %s: %v", name, err)
	}
	m.acc = a
}

func (e *env) apply(name string, r Ready, out *strings.Builder) {
	m := e.accs[name]
	if r.Truncate {
		m.wal = m.wal[:r.TruncateLSN-e.start]
		fmt.Fprintf(out, "  %s: truncate to %s\n", name, r.TruncateLSN)
	}
	if len(r.WAL) > 0 {
		off := int(r.WriteLSN - e.start)
		m.wal = append(m.wal[:off], r.WAL...)
		fmt.Fprintf(out, "  %s: write %s..%s\n", name, r.WriteLSN, r.WriteLSN+lsn.LSN(len(r.WAL)))
	}
	if r.Persist {
		m.state = r.State.Clone()
		fmt.Fprintf(out, "  %s: persist term=%d history=%s commit=%s\n", name, r.State.Term, r.State.History, r.State.CommitLSN)
	}
}

func (e *env) send(from string, outs []Out) {
	for _, o := range outs {
		e.queue = append(e.queue, envelope{from: from, to: o.To, msg: o.Msg})
	}
}

func (e *env) deliverOne(t testing.TB, ev envelope, out *strings.Builder) {
	fmt.Fprintf(out, "%s->%s %s\n", ev.from, ev.to, Format(ev.msg))
	if m, ok := e.accs[ev.to]; ok {
		r, err := m.acc.Step(ev.msg)
		if err != nil {
			fmt.Fprintf(out, "  %s: error: %v\n", ev.to, err)
			return
		}
		e.apply(ev.to, r, out)
		if r.Reply != nil {
			e.queue = append(e.queue, envelope{from: ev.to, to: ev.from, msg: r.Reply})
		}
		return
	}
	p := e.props[ev.to]
	wasElected := p.Elected()
	outs, err := p.Step(ev.from, ev.msg)
	if err != nil {
		fmt.Fprintf(out, "  %s: error: %v\n", ev.to, err)
		return
	}
	p.Trim() // as the walproposer does once it has seen new commits
	if !wasElected && p.Elected() {
		fmt.Fprintf(out, "  %s: elected term=%d donor=%s epoch-start=%s history=%s\n", ev.to, p.Term(), p.Donor(), p.EpochStartLSN(), p.History())
	}
	e.send(ev.to, outs)
}

func match(v, want string) bool { return want == "" || v == want }

func (e *env) handle(t testing.TB, d *datadriven.TestData) string {
	var out strings.Builder
	arg := func(key string) string {
		var v string
		d.MaybeScanArgs(t, key, &v)
		return v
	}
	switch d.Cmd {
	case "init":
		n, start := 3, 16
		d.MaybeScanArgs(t, "acceptors", &n)
		d.MaybeScanArgs(t, "start", &start)
		*e = env{start: lsn.LSN(start), accs: map[string]*memAcceptor{}, props: map[string]*Proposer{}}
		e.bugs.TruncateCommitted = d.HasArg("bug-truncate-committed")
		e.bugs.CommitWithoutQuorum = d.HasArg("bug-commit-without-quorum")
		for i := 1; i <= n; i++ {
			name := fmt.Sprintf("a%d", i)
			e.accs[name] = &memAcceptor{state: AcceptorState{StartLSN: e.start}}
			e.accOrder = append(e.accOrder, name)
			e.restart(t, name)
		}
		return "ok"
	case "propose":
		name := arg("name")
		maxBuf, maxRecover := 0, 0
		d.MaybeScanArgs(t, "max-buffer", &maxBuf)
		d.MaybeScanArgs(t, "max-recover", &maxRecover)
		p, err := NewProposer(ProposerConfig{ID: name, StartLSN: e.start, Acceptors: e.accOrder,
			MaxAppendBytes: 64, MaxInflightBytes: 256, MaxBufferBytes: maxBuf, MaxRecoverBytes: maxRecover, Bugs: e.bugs})
		if err != nil {
			t.Fatal(err)
		}
		e.props[name] = p
		e.propOrder = append(e.propOrder, name)
		for _, a := range e.accOrder {
			outs, _ := p.Connect(a)
			e.send(name, outs)
		}
		return e.queued()
	case "connect":
		p := e.props[arg("proposer")]
		outs, err := p.Connect(arg("acceptor"))
		if err != nil {
			t.Fatal(err)
		}
		e.send(arg("proposer"), outs)
		return e.queued()
	case "deliver":
		from, to := arg("from"), arg("to")
		limit := -1
		d.MaybeScanArgs(t, "count", &limit)
		for n := 0; limit < 0 || n < limit; n++ {
			i := -1
			for j, ev := range e.queue {
				if match(ev.from, from) && match(ev.to, to) {
					i = j
					break
				}
			}
			if i < 0 {
				break
			}
			ev := e.queue[i]
			e.queue = append(e.queue[:i:i], e.queue[i+1:]...)
			e.deliverOne(t, ev, &out)
		}
		return out.String()
	case "drop":
		from, to := arg("from"), arg("to")
		kept := e.queue[:0]
		for _, ev := range e.queue {
			if match(ev.from, from) && match(ev.to, to) {
				fmt.Fprintf(&out, "dropped %s->%s %s\n", ev.from, ev.to, Format(ev.msg))
				continue
			}
			kept = append(kept, ev)
		}
		e.queue = kept
		return out.String()
	case "append":
		name := arg("proposer")
		n := 1
		d.MaybeScanArgs(t, "records", &n)
		var recs [][]byte
		for i := 0; i < n; i++ {
			e.seq++
			recs = append(recs, []byte(fmt.Sprintf("%s.%d", name, e.seq)))
		}
		end, outs, err := e.props[name].Append(recs)
		if err != nil {
			return "error: " + err.Error()
		}
		e.props[name].Trim()
		e.send(name, outs)
		return fmt.Sprintf("end=%s\n%s", end, e.queued())
	case "recover":
		name := arg("proposer")
		p := e.props[name]
		need, ok := p.MissingWAL()
		if !ok {
			return "nothing missing"
		}
		src := e.accs[need.From]
		data := readWindow(src.wal, e.start, need)
		outs, err := p.Recovered(need.Start, data)
		if err != nil {
			return "error: " + err.Error()
		}
		e.send(name, outs)
		return fmt.Sprintf("read %s..%s from %s\n%s", need.Start, need.Start+lsn.LSN(len(data)), need.From, e.queued())
	case "crash":
		name := arg("acceptor")
		kept := e.queue[:0]
		for _, ev := range e.queue {
			if ev.from != name && ev.to != name {
				kept = append(kept, ev)
			}
		}
		e.queue = kept
		e.restart(t, name)
		for _, pn := range e.propOrder {
			e.props[pn].Disconnect(name)
		}
		return "ok"
	case "state":
		return e.dump()
	}
	t.Fatalf("unknown command %q", d.Cmd)
	return ""
}

func (e *env) queued() string {
	var b strings.Builder
	for _, ev := range e.queue {
		fmt.Fprintf(&b, "queued %s->%s %s\n", ev.from, ev.to, Format(ev.msg))
	}
	return b.String()
}

func (e *env) dump() string {
	var b strings.Builder
	for _, name := range e.accOrder {
		m := e.accs[name]
		a := m.acc
		recs, err := SplitFrames(m.wal)
		var rs []string
		for _, r := range recs {
			rs = append(rs, string(r))
		}
		if err != nil {
			rs = append(rs, "CORRUPT")
		}
		fmt.Fprintf(&b, "%s: term=%d elected=%d flush=%s commit=%s history=%s wal=[%s]\n",
			name, a.Term(), a.ElectedTerm(), a.FlushLSN(), a.CommitLSN(), a.History(), strings.Join(rs, " "))
	}
	for _, name := range e.propOrder {
		p := e.props[name]
		st := "greeting"
		switch {
		case p.Defeated():
			st = "defeated"
		case p.Elected():
			st = "elected"
		case p.Term() > 0:
			st = "voting"
		}
		fmt.Fprintf(&b, "%s: %s term=%d commit=%s end=%s\n", name, st, p.Term(), p.CommitLSN(), p.EndLSN())
	}
	return b.String()
}

func TestInteractions(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var e env
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return e.handle(t, d)
		})
	})
}

func TestLastCommonPoint(t *testing.T) {
	h := func(pairs ...uint64) TermHistory {
		var out TermHistory
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, TermSwitch{Term: Term(pairs[i]), LSN: lsn.LSN(pairs[i+1])})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		a    TermHistory
		aEnd lsn.LSN
		b    TermHistory
		bEnd lsn.LSN
		want lsn.LSN
	}{
		{"both empty", nil, 10, nil, 10, 10},
		{"fresh acceptor", h(1, 10), 50, nil, 10, 10},
		{"same term shorter wins", h(1, 10), 50, h(1, 10), 30, 30},
		{"diverged after common term", h(1, 10, 2, 40), 60, h(1, 10, 3, 45), 70, 40},
		{"diverged: other term within the common one", h(1, 10, 3, 45), 70, h(1, 10, 2, 40), 42, 40},
		{"no common term", h(2, 10), 50, h(1, 10), 30, 10},
		{"entry beyond end ignored", h(1, 10, 2, 80), 60, h(1, 10), 60, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LastCommonPoint(tc.a, tc.aEnd, tc.b, tc.bEnd); got != tc.want {
				t.Fatalf("got %s want %s", got, tc.want)
			}
			if got := LastCommonPoint(tc.b, tc.bEnd, tc.a, tc.aEnd); got != tc.want {
				t.Fatalf("not symmetric: got %s want %s", got, tc.want)
			}
		})
	}
}

func TestAcceptorRejects(t *testing.T) {
	a, err := NewAcceptor("a", AcceptorState{StartLSN: 16}, 16, Bugs{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Step(AppendRequest{Term: 1, BeginLSN: 16, EndLSN: 16}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("append before election: %v", err)
	}
	if _, err := NewAcceptor("a", AcceptorState{StartLSN: 16, CommitLSN: 40}, 30, Bugs{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flush below commit: %v", err)
	}
	if _, err := a.Step(ProposerElected{Term: 5, History: TermHistory{{5, 16}}}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("elected without vote: %v", err)
	}
}

// readWindow is what a safekeeper serves for need out of wal (which starts
// at walStart): whole frames from need.Start towards need.End, at most
// need.MaxBytes unless the first frame alone is larger.
func readWindow(wal []byte, walStart lsn.LSN, need NeedWAL) []byte {
	data := wal[need.Start-walStart : need.End-walStart]
	n := 0
	for n < len(data) {
		fl, ok := PeekFrameLen(data[n:])
		if !ok || n+fl > len(data) || (n > 0 && n+fl > need.MaxBytes) {
			break
		}
		n += fl
	}
	return data[:n]
}
