package pagecheck

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// Checker errors.
var (
	ErrWrongPage       = errors.New("pagecheck: a read returned a page the committed WAL does not give")
	ErrWrongShard      = errors.New("pagecheck: a shard answered a block it does not own")
	ErrBadRefusal      = errors.New("pagecheck: a read was refused without cause")
	ErrBadCommittedWAL = errors.New("pagecheck: committed WAL does not decode")
)

// Read is one page request and its answer.
type Read struct {
	At  lsn.LSN
	Blk uint32
	// Shard names where the read went, for messages (a shard id).
	Shard string
	// Probe: sent on purpose to a shard that does not own Blk; Owner names
	// the one that does.
	Probe bool
	Owner string
	// Final: the auditor's read after healing.
	Final  bool
	Status pageapi.GetPageStatusCode
	Reason string
	Page   []byte
}

// History is what the workload saw: commit LSNs it was acknowledged, and
// every page read with its answer. Safe for concurrent use.
type History struct {
	// Start is the LSN the timeline starts at (maxCommit before any
	// acknowledgement).
	Start lsn.LSN

	mu      sync.Mutex
	commits []lsn.LSN // acknowledged commit LSNs, increasing
	reads   []Read
	err     error
	stopped bool
	floor   lsn.LSN
}

func (h *History) setFloor(l lsn.LSN) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.floor == 0 {
		h.floor = l
	}
}

// Floor is the commit LSN of a Writer's preload (0 until it committed):
// from there on every block has a page.
func (h *History) Floor() lsn.LSN {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.floor
}

// Fail records the first failure a workload or checker saw.
func (h *History) Fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		h.err = err
	}
}

// Failure is the first recorded failure.
func (h *History) Failure() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Stop ends recording of workload reads (final reads still count).
func (h *History) Stop() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
}

// Stopped reports whether Stop was called.
func (h *History) Stopped() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped
}

// Committed records an acknowledged commit LSN.
func (h *History) Committed(end lsn.LSN) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.commits); n == 0 || end > h.commits[n-1] {
		h.commits = append(h.commits, end)
	}
}

// MaxCommit is the newest acknowledged commit LSN (Start before any).
func (h *History) MaxCommit() lsn.LSN {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.commits) == 0 {
		return h.Start
	}
	return h.commits[len(h.commits)-1]
}

// ReadLSN picks an acknowledged commit LSN to read at: the newest, or with
// old set any of them (which may be below the GC cutoff by now); only
// those at or above floor.
func (h *History) ReadLSN(old bool, floor lsn.LSN, intN func(int) int) (lsn.LSN, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i, _ := slices.BinarySearch(h.commits, floor)
	c := h.commits[i:]
	if h.stopped || len(c) == 0 {
		return 0, false
	}
	if old {
		return c[intN(len(c))], true
	}
	return c[len(c)-1], true
}

// Record adds an answered read (ignored once stopped, unless final).
func (h *History) Record(r Read) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !r.Final && h.stopped {
		return
	}
	h.reads = append(h.reads, r)
}

// Reads is how many reads were recorded.
func (h *History) Reads() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.reads)
}

// Model is the committed WAL decoded: records with the LSN just past each
// frame, in order.
type Model struct {
	recs []modelRec
}

type modelRec struct {
	end lsn.LSN
	rec walrec.Record
}

// Records is how many committed records the model holds.
func (m *Model) Records() int { return len(m.recs) }

// NewModel decodes the committed WAL that starts at start.
func NewModel(wal []byte, start lsn.LSN) (*Model, error) {
	m := &Model{}
	pos := start
	for off := 0; off < len(wal); {
		n, err := skproto.FrameLen(wal[off:])
		if err != nil {
			return nil, fmt.Errorf("%w: at %s: %v", ErrBadCommittedWAL, pos, err)
		}
		rec, _, err := walrec.Decode(wal[off+skproto.FrameHeaderBytes : off+n])
		if err != nil {
			return nil, fmt.Errorf("%w: at %s: %v", ErrBadCommittedWAL, pos, err)
		}
		off += n
		pos += lsn.LSN(n)
		m.recs = append(m.recs, modelRec{end: pos, rec: rec})
	}
	return m, nil
}

// Verify checks every read against the model. Reads are sorted by LSN
// and the model's pages are built forward once. It returns how many
// answers of each status it checked ("probe" for probes).
func (h *History) Verify(m *Model) (map[string]int, error) {
	h.mu.Lock()
	reads := slices.Clone(h.reads)
	h.mu.Unlock()
	slices.SortStableFunc(reads, func(a, b Read) int { return cmpLSN(a.At, b.At) })
	pages := map[uint32][]byte{}
	next := 0
	counts := map[string]int{}
	for _, r := range reads {
		for next < len(m.recs) && m.recs[next].end <= r.At {
			apply(pages, m.recs[next].rec)
			next++
		}
		if err := check(r, pages[r.Blk]); err != nil {
			return counts, err
		}
		name := strings.TrimPrefix(r.Status.String(), "GET_PAGE_STATUS_CODE_")
		if r.Probe {
			name = "probe"
		}
		counts[name]++
	}
	return counts, nil
}

func cmpLSN(a, b lsn.LSN) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// apply redoes one record on the model's pages: a full image replaces the
// page, a page write patches it (an all-zero page if there was none), size
// changes leave pages alone.
func apply(pages map[uint32][]byte, rec walrec.Record) {
	switch r := rec.(type) {
	case walrec.FullPageImage:
		pages[r.Blk] = slices.Clone(r.Page)
	case walrec.PageWrite:
		p := pages[r.Blk]
		if p == nil {
			p = make([]byte, walrec.PageSize)
		} else {
			p = slices.Clone(p)
		}
		copy(p[r.Offset:], r.Data)
		pages[r.Blk] = p
	}
}

// check judges one answer against the page the model has for it.
func check(r Read, want []byte) error {
	where := fmt.Sprintf("block %d at %s from shard %s", r.Blk, r.At, r.Shard)
	if r.Probe {
		if r.Status != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST || !strings.Contains(r.Reason, "is on shard") {
			return fmt.Errorf("%w: %s (owner %s) answered %v %q", ErrWrongShard, where, r.Owner, r.Status, r.Reason)
		}
		return nil
	}
	switch r.Status {
	case pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK:
		if want == nil {
			return fmt.Errorf("%w: %s answered a page, but no committed record wrote it by then", ErrWrongPage, where)
		}
		if !bytes.Equal(r.Page, want) {
			return fmt.Errorf("%w: %s differs from the redo of the committed WAL", ErrWrongPage, where)
		}
	case pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_NOT_FOUND:
		if want != nil {
			return fmt.Errorf("%w: %s answered not found, but committed records wrote it: %q", ErrWrongPage, where, r.Reason)
		}
	case pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST:
		if !strings.Contains(r.Reason, "GC cutoff") || r.Final {
			return fmt.Errorf("%w: %s: %q", ErrBadRefusal, where, r.Reason)
		}
	case pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INTERNAL_ERROR, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_SLOW_DOWN:
		// Timed out waiting for ingest, or a disk fault: an error, not an
		// answer. The final reads (after healing) must not end here.
		if r.Final {
			return fmt.Errorf("%w: %s after healing: %v %q", ErrBadRefusal, where, r.Status, r.Reason)
		}
	default:
		return fmt.Errorf("%w: %s: status %v", ErrBadRefusal, where, r.Status)
	}
	return nil
}
