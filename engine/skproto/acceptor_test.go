package skproto

import (
	"errors"
	"testing"

	"github.com/stratadb/strata/engine/lsn"
)

// electedAcceptor returns an acceptor at start that voted for and follows
// term 1.
func electedAcceptor(t *testing.T, start lsn.LSN) *Acceptor {
	t.Helper()
	a, err := NewAcceptor("a", AcceptorState{StartLSN: start, CommitLSN: start}, start, Bugs{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Step(VoteRequest{Term: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Step(ProposerElected{Term: 1, StartStreamingAt: start, History: TermHistory{{1, start}}}); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAppendRefusesBadWAL: an acceptor acknowledges only whole valid frames
// (start-up finds the WAL's end by scanning frames, so anything else would
// be acknowledged and then lost on restart) and refuses an oversized
// request with ErrTooLarge.
func TestAppendRefusesBadWAL(t *testing.T) {
	const start = lsn.LSN(0x100)
	good := AppendFrame(AppendFrame(nil, []byte("one")), []byte("two"))
	damaged := append([]byte(nil), good...)
	damaged[len(damaged)-1] ^= 1
	big := AppendFrame(nil, make([]byte, MaxFramePayloadBytes))
	var huge []byte
	for len(huge) <= MaxAppendWALBytes {
		huge = append(huge, big...)
	}
	for _, tc := range []struct {
		name string
		wal  []byte
		want error
	}{
		{"whole frames", good, nil},
		{"largest single frame", big, nil},
		{"cut frame", good[:len(good)-2], ErrFrame},
		{"damaged frame", damaged, ErrFrame},
		{"not frames", []byte("hello, world"), ErrFrame},
		{"oversized", huge, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := electedAcceptor(t, start)
			end := start + lsn.LSN(len(tc.wal))
			r, err := a.Step(AppendRequest{Term: 1, BeginLSN: start, EndLSN: end, CommitLSN: start, WAL: tc.wal})
			if tc.want == nil {
				if err != nil || a.FlushLSN() != end || len(r.WAL) != len(tc.wal) {
					t.Fatalf("append: err %v, flush %s, write %d bytes; want flush %s", err, a.FlushLSN(), len(r.WAL), end)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("append: err %v, want %v", err, tc.want)
			}
			if a.FlushLSN() != start {
				t.Fatalf("refused append moved flush to %s", a.FlushLSN())
			}
		})
	}
}

func TestProposerRefusesAppendOverAcceptorLimit(t *testing.T) {
	_, err := NewProposer(ProposerConfig{Acceptors: []string{"a"}, MaxAppendBytes: MaxAppendWALBytes + 1, MaxInflightBytes: 2 * MaxAppendWALBytes})
	if err == nil {
		t.Fatal("proposer accepted MaxAppendBytes over MaxAppendWALBytes")
	}
}

// TestProposerBufferBoundedBySlowStreamingAcceptor: an acceptor that
// follows the proposer but never acknowledges must not pin the WAL buffer
// beyond MaxBufferBytes; what it lacks is re-read from a peer.
func TestProposerBufferBoundedBySlowStreamingAcceptor(t *testing.T) {
	const start = lsn.LSN(0x100)
	accs := []string{"a", "b", "c"}
	p, err := NewProposer(ProposerConfig{ID: "p", StartLSN: start, Acceptors: accs,
		MaxAppendBytes: 256, MaxInflightBytes: 512, MaxBufferBytes: 1024})
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
		t.Fatal("proposer not elected")
	}
	for i := 0; i < 100; i++ {
		end, outs, err := p.Append([][]byte{make([]byte, 100)})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			if o.To == "c" {
				continue // c follows but never answers
			}
			if _, err := p.Step(o.To, AppendResponse{Term: 1, FlushLSN: o.Msg.(AppendRequest).EndLSN}); err != nil {
				t.Fatal(err)
			}
		}
		if p.CommitLSN() != end {
			t.Fatalf("append %d: commit %s, want %s", i, p.CommitLSN(), end)
		}
		p.Trim()
		if held := int(p.EndLSN() - p.BufferStart()); held > 1024 {
			t.Fatalf("append %d: buffer holds %d bytes over MaxBufferBytes 1024 (start %s, commit %s)", i, held, p.BufferStart(), p.CommitLSN())
		}
	}
	need, ok := p.MissingWAL()
	if !ok || need.From == "c" || need.End != p.BufferStart() {
		t.Fatalf("MissingWAL = %+v, %t; want a re-read for c from a or b", need, ok)
	}
}

// TestElectTruncatesAtLastCommonPoint pins the ProposerElected edge cases:
// a proposer whose history is shorter than the acceptor's, a start point
// that is not the last common point, a start below the commit LSN, and a
// vote in an equal term.
func TestElectTruncatesAtLastCommonPoint(t *testing.T) {
	const s = lsn.LSN(0x100)
	// The acceptor holds term 1 WAL [s, s+18) then term 2 WAL [s+18, s+45),
	// committed up to commit (the step machine never looks at the bytes).
	setup := func(t *testing.T, commit lsn.LSN) *Acceptor {
		t.Helper()
		a, err := NewAcceptor("a", AcceptorState{Term: 2, History: TermHistory{{1, s}, {2, s + 18}}, StartLSN: s, CommitLSN: commit}, s+45, Bugs{})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range []struct {
		name    string
		commit  lsn.LSN
		history TermHistory
		start   lsn.LSN
		want    error
		flush   lsn.LSN
	}{
		{"shorter history diverging in term 1", s, TermHistory{{1, s}, {3, s + 27}}, s + 18, nil, s + 18},
		{"same term 2 prefix", s, TermHistory{{1, s}, {2, s + 18}, {3, s + 36}}, s + 36, nil, s + 36},
		{"proposer ahead in term 2", s, TermHistory{{1, s}, {2, s + 18}, {3, s + 54}}, s + 45, nil, s + 45},
		{"empty common prefix", s, TermHistory{{3, s}}, s, nil, s},
		{"start not the last common point", s, TermHistory{{1, s}, {3, s + 27}}, s + 9, ErrProtocol, s + 45},
		{"start below commit", s + 36, TermHistory{{1, s}, {3, s + 27}}, s + 18, ErrCommitTruncate, s + 45},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := setup(t, tc.commit)
			if r, _ := a.Step(VoteRequest{Term: 2}); r.Reply.(VoteResponse).VoteGiven || r.Persist {
				t.Fatal("vote granted in an equal term")
			}
			if r, _ := a.Step(VoteRequest{Term: 3}); !r.Reply.(VoteResponse).VoteGiven || !r.Persist {
				t.Fatal("vote refused for a greater term, or not persisted")
			}
			r, err := a.Step(ProposerElected{Term: 3, StartStreamingAt: tc.start, History: tc.history})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("elect: err %v, want %v", err, tc.want)
			}
			if a.FlushLSN() != tc.flush {
				t.Fatalf("flush %s, want %s", a.FlushLSN(), tc.flush)
			}
			if tc.want == nil && (r.Truncate != (tc.flush < s+45) || !r.Persist || !slicesEqual(r.State.History, tc.history)) {
				t.Fatalf("ready %+v: want truncate=%t, persisted history %s", r, tc.flush < s+45, tc.history)
			}
		})
	}
}

func slicesEqual(a, b TermHistory) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestProposerConfigValidate(t *testing.T) {
	ok := ProposerConfig{ID: "p", Acceptors: []string{"a"}}
	for _, tc := range []struct {
		name string
		edit func(*ProposerConfig)
		ok   bool
	}{
		{"defaults", func(*ProposerConfig) {}, true},
		{"no acceptors", func(c *ProposerConfig) { c.Acceptors = nil }, false},
		{"negative MaxAppendBytes", func(c *ProposerConfig) { c.MaxAppendBytes = -1 }, false},
		{"negative MaxInflightBytes", func(c *ProposerConfig) { c.MaxInflightBytes = -1 }, false},
		{"negative MaxBufferBytes", func(c *ProposerConfig) { c.MaxBufferBytes = -1 }, false},
		{"negative MaxRecoverBytes", func(c *ProposerConfig) { c.MaxRecoverBytes = -1 }, false},
		{"append over the acceptors' limit", func(c *ProposerConfig) { c.MaxAppendBytes, c.MaxInflightBytes = MaxAppendWALBytes+1, 64<<20 }, false},
		{"inflight below append", func(c *ProposerConfig) { c.MaxAppendBytes, c.MaxInflightBytes = 4096, 1024 }, false},
		{"window below append", func(c *ProposerConfig) { c.MaxAppendBytes, c.MaxRecoverBytes = 4096, 1024 }, false},
		{"window of one append", func(c *ProposerConfig) { c.MaxAppendBytes, c.MaxRecoverBytes = 4096, 4096 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			before := c
			err := c.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate = %v, want ok=%t (and ErrConfig otherwise)", err, tc.ok)
			}
			if c.MaxBufferBytes != before.MaxBufferBytes || c.MaxRecoverBytes != before.MaxRecoverBytes {
				t.Fatal("Validate changed the config")
			}
		})
	}
	if d := ok.withDefaults(); d.MaxRecoverBytes != DefaultMaxRecoverBytes || d.MaxBufferBytes != DefaultMaxBufferBytes {
		t.Fatalf("withDefaults = %+v", d)
	}
}
