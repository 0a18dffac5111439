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
