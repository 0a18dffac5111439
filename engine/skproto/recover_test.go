package skproto

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stratadb/strata/engine/lsn"
)

// TestProposerRecoversLongGapInWindows: an acceptor that was away while
// the others committed a gap forty times MaxRecoverBytes (and 160 times
// MaxBufferBytes) comes back. The proposer re-reads the gap window by
// window, never holding more than MaxBufferBytes in its buffer nor more than
// MaxRecoverBytes in its window, keeps appending meanwhile, survives failed
// and short reads without going back to the start of the gap, and the
// laggard ends up with exactly the committed WAL.
func TestProposerRecoversLongGapInWindows(t *testing.T) {
	const (
		start      = lsn.LSN(0x100)
		maxBuffer  = 1024
		maxRecover = 4096
		gapBytes   = 40 * maxRecover
	)
	accs := []string{"a", "b", "c"}
	p, err := NewProposer(ProposerConfig{ID: "p", StartLSN: start, Acceptors: accs,
		MaxAppendBytes: 256, MaxInflightBytes: 1024, MaxBufferBytes: maxBuffer, MaxRecoverBytes: maxRecover})
	if err != nil {
		t.Fatal(err)
	}
	checkBounds := func(when string) {
		t.Helper()
		if held := int(p.EndLSN() - p.BufferStart()); held > maxBuffer {
			t.Fatalf("%s: buffer holds %d bytes over MaxBufferBytes %d", when, held, maxBuffer)
		}
		if w := p.WindowBytes(); w > maxRecover {
			t.Fatalf("%s: recovery window holds %d bytes over MaxRecoverBytes %d", when, w, maxRecover)
		}
	}
	// wal is the WAL every AppendRequest agrees on (the model), c what the
	// laggard wrote.
	var wal, cWAL []byte
	cFlush := start
	var toC []AppendRequest
	// deliver sends outs in order (per-link FIFO): a and b acknowledge at
	// once, requests to c queue until c is served.
	deliver := func(outs []Out) {
		t.Helper()
		for len(outs) > 0 {
			o := outs[0]
			outs = outs[1:]
			req, ok := o.Msg.(AppendRequest)
			if !ok {
				continue
			}
			if off := int(req.BeginLSN - start); off+len(req.WAL) > len(wal) {
				wal = append(wal[:off], req.WAL...)
			} else if !bytes.Equal(wal[off:off+len(req.WAL)], req.WAL) {
				t.Fatalf("AppendRequest to %s at %s disagrees with the WAL sent before", o.To, req.BeginLSN)
			}
			if o.To == "c" {
				toC = append(toC, req)
				continue
			}
			more, err := p.Step(o.To, AppendResponse{Term: 1, FlushLSN: req.EndLSN, CommitLSN: req.CommitLSN})
			if err != nil {
				t.Fatal(err)
			}
			p.Trim()
			checkBounds("after an ack from " + o.To)
			outs = append(outs, more...)
		}
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
	for _, id := range []string{"a", "b"} {
		if _, err := p.Step(id, AppendResponse{Term: 1, FlushLSN: start, CommitLSN: start}); err != nil {
			t.Fatal(err)
		}
	}
	p.Disconnect("c") // c goes away before it follows the term
	if !p.Elected() {
		t.Fatal("proposer not elected")
	}
	seq := 0
	appendSome := func(n int) {
		t.Helper()
		for range n {
			seq++
			_, outs, err := p.Append([][]byte{fmt.Appendf(nil, "record %06d %s", seq, bytes.Repeat([]byte{'x'}, 80))})
			if err != nil {
				t.Fatal(err)
			}
			deliver(outs)
		}
	}
	for p.CommitLSN() < start+gapBytes {
		appendSome(1)
	}
	if p.CommitLSN() != p.EndLSN() {
		t.Fatalf("a and b did not commit everything: commit %s, end %s", p.CommitLSN(), p.EndLSN())
	}

	// c comes back: greeting, (no) vote in the term it already voted in,
	// ProposerElected, and its ack at its old flush puts it far behind.
	outs, err := p.Connect("c")
	if err != nil {
		t.Fatal(err)
	}
	for len(outs) > 0 {
		var next []Out
		for _, o := range outs {
			var reply Msg
			switch m := o.Msg.(type) {
			case Greeting:
				reply = GreetingResponse{NodeID: "c", Term: 1}
			case VoteRequest:
				reply = VoteResponse{Term: m.Term, VoteGiven: false, FlushLSN: start, CommitLSN: start}
			case ProposerElected:
				if m.StartStreamingAt != start {
					t.Fatalf("c told to start at %s, want %s", m.StartStreamingAt, start)
				}
				reply = AppendResponse{Term: 1, FlushLSN: start, CommitLSN: start}
			default:
				t.Fatalf("unexpected %s to c", Format(o.Msg))
			}
			more, err := p.Step("c", reply)
			if err != nil {
				t.Fatal(err)
			}
			next = append(next, more...)
		}
		outs = next
	}

	windows, failures := 0, 0
	lastStart := lsn.LSN(0)
	for round := 0; cFlush < p.EndLSN(); round++ {
		if round > 10000 {
			t.Fatalf("no end in sight: c at %s, end %s after %d windows", cFlush, p.EndLSN(), windows)
		}
		if need, ok := p.MissingWAL(); ok {
			if need.From == "c" || need.MaxBytes != maxRecover || need.End != p.BufferStart() {
				t.Fatalf("MissingWAL = %+v, want a window of %d from a or b ending at %s", need, maxRecover, p.BufferStart())
			}
			if need.Start < lastStart {
				t.Fatalf("window %d starts at %s, below the previous one at %s: recovery went back", windows, need.Start, lastStart)
			}
			lastStart = need.Start
			data := readWindow(wal, start, need)
			switch {
			case round%7 == 3:
				failures++ // the read failed: nothing arrives, the window is asked again
				continue
			case round%5 == 2:
				// A read that broke half-way hands over the whole frames it got.
				half := NeedWAL{From: need.From, Start: need.Start, End: need.End, MaxBytes: len(data) / 2}
				data = readWindow(wal, start, half)
			}
			outs, err := p.Recovered(need.Start, data)
			if err != nil {
				t.Fatal(err)
			}
			windows++
			checkBounds("after a recovered window")
			deliver(outs)
		}
		// c writes what it was sent and acknowledges it.
		sent := toC
		toC = nil
		for _, req := range sent {
			if req.BeginLSN > cFlush {
				t.Fatalf("c sent %s..%s past its flush %s", req.BeginLSN, req.EndLSN, cFlush)
			}
			if req.EndLSN > cFlush {
				cWAL = append(cWAL, req.WAL[cFlush-req.BeginLSN:]...)
				cFlush = req.EndLSN
			}
			more, err := p.Step("c", AppendResponse{Term: 1, FlushLSN: cFlush, CommitLSN: req.CommitLSN})
			if err != nil {
				t.Fatal(err)
			}
			p.Trim()
			checkBounds("after an ack from c")
			deliver(more)
		}
		if round%3 == 0 {
			appendSome(2) // the workload goes on during recovery
		}
	}
	if !bytes.Equal(cWAL, wal) {
		t.Fatalf("c holds %d bytes that differ from the %d-byte WAL", len(cWAL), len(wal))
	}
	if windows < gapBytes/maxRecover {
		t.Fatalf("a %d-byte gap took %d windows, want at least %d", gapBytes, windows, gapBytes/maxRecover)
	}
	t.Logf("gap of %d bytes recovered in %d windows (%d failed reads); WAL now %d bytes", gapBytes, windows, failures, len(wal))
}
