package pageserver

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
	ErrWrongPage       = errors.New("pageserver: a read returned a page the committed WAL does not give")
	ErrWrongShard      = errors.New("pageserver: a shard answered a block it does not own")
	ErrBadRefusal      = errors.New("pageserver: a read was refused without cause")
	ErrBadCommittedWAL = errors.New("pageserver: committed WAL does not decode")
)

// readResult is one page request and its answer.
type readResult struct {
	at     lsn.LSN
	blk    uint32
	shard  int
	probe  bool // sent to a shard that does not own blk on purpose
	final  bool // the auditor's read after healing
	status pageapi.GetPageStatusCode
	reason string
	page   []byte
}

// history is what the workload saw: commit LSNs it was acknowledged, and
// every page read with its answer.
type history struct {
	mu      sync.Mutex
	commits []lsn.LSN // acknowledged commit LSNs, increasing
	reads   []readResult
	err     error
	stopped bool
}

func (h *history) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		h.err = err
	}
}

func (h *history) failure() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *history) stop() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
}

func (h *history) isStopped() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped
}

func (h *history) committed(end lsn.LSN) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.commits); n == 0 || end > h.commits[n-1] {
		h.commits = append(h.commits, end)
	}
}

func (h *history) maxCommit() lsn.LSN {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.commits) == 0 {
		return startLSN
	}
	return h.commits[len(h.commits)-1]
}

// readLSN picks an acknowledged commit LSN to read at: the newest, or with
// old set any of them (which may be below the GC cutoff by now).
func (h *history) readLSN(old bool, intN func(int) int) (lsn.LSN, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped || len(h.commits) == 0 {
		return 0, false
	}
	if old {
		return h.commits[intN(len(h.commits))], true
	}
	return h.commits[len(h.commits)-1], true
}

func (h *history) read(r readResult) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !r.final && h.stopped {
		return
	}
	h.reads = append(h.reads, r)
}

// model is the committed WAL decoded: records with the LSN just past each
// frame, in order.
type model struct {
	recs []modelRec
}

type modelRec struct {
	end lsn.LSN
	rec walrec.Record
}

func newModel(wal []byte) (*model, error) {
	m := &model{}
	pos := startLSN
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

// verify checks every read against the model. Reads are sorted by LSN
// and the model's pages are built forward once. It returns how many
// answers of each status it checked.
func (h *history) verify(m *model, c *cluster) (map[string]int, error) {
	h.mu.Lock()
	reads := slices.Clone(h.reads)
	h.mu.Unlock()
	slices.SortStableFunc(reads, func(a, b readResult) int { return cmpLSN(a.at, b.at) })
	pages := map[uint32][]byte{}
	next := 0
	counts := map[string]int{}
	for _, r := range reads {
		for next < len(m.recs) && m.recs[next].end <= r.at {
			apply(pages, m.recs[next].rec)
			next++
		}
		if err := check(r, pages[r.blk], c); err != nil {
			return counts, err
		}
		name := strings.TrimPrefix(r.status.String(), "GET_PAGE_STATUS_CODE_")
		if r.probe {
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
func check(r readResult, want []byte, c *cluster) error {
	where := fmt.Sprintf("block %d at %s from shard %s", r.blk, r.at, c.shardID(r.shard))
	if r.probe {
		if r.status != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST || !strings.Contains(r.reason, "is on shard") {
			return fmt.Errorf("%w: %s (owner %s) answered %v %q", ErrWrongShard, where, c.shardID(c.owner(r.blk)), r.status, r.reason)
		}
		return nil
	}
	switch r.status {
	case pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK:
		if want == nil {
			return fmt.Errorf("%w: %s answered a page, but no committed record wrote it by then", ErrWrongPage, where)
		}
		if !bytes.Equal(r.page, want) {
			return fmt.Errorf("%w: %s differs from the redo of the committed WAL", ErrWrongPage, where)
		}
	case pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_NOT_FOUND:
		if want != nil {
			return fmt.Errorf("%w: %s answered not found, but committed records wrote it: %q", ErrWrongPage, where, r.reason)
		}
	case pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST:
		if !strings.Contains(r.reason, "GC cutoff") || r.final {
			return fmt.Errorf("%w: %s: %q", ErrBadRefusal, where, r.reason)
		}
	case pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INTERNAL_ERROR, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_SLOW_DOWN:
		// Timed out waiting for ingest, or a disk fault: an error, not an
		// answer. The final reads (after healing) must not end here.
		if r.final {
			return fmt.Errorf("%w: %s after healing: %v %q", ErrBadRefusal, where, r.status, r.reason)
		}
	default:
		return fmt.Errorf("%w: %s: status %v", ErrBadRefusal, where, r.status)
	}
	return nil
}
