package timeline

import (
	"errors"
	"fmt"
	"sync"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layermap"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// readScratch is the memory one read reuses: the search result, the values
// handed to Redo and the versions the read pinned.
type readScratch struct {
	r     layermap.Result[walrec.Value]
	vals  []walrec.Value
	chain []pinned
}

// Bounds of the scratch pool: how many idle scratches it keeps, and the
// largest one it keeps (a read of a very long chain gets a scratch of its
// own that is then dropped, so the pool's memory stays small).
const (
	maxIdleScratch    = 8
	maxScratchEntries = 256
)

// scratchPool is a small free list of read scratches, so that a read does
// not allocate its search state. It is a plain mutex-guarded list (not a
// sync.Pool) to keep behaviour deterministic under the simulator.
type scratchPool struct {
	mu   sync.Mutex
	free []*readScratch
}

func (p *scratchPool) get() *readScratch {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		return s
	}
	return &readScratch{}
}

// put returns s to the pool after dropping its references to page memory
// (values shared with layer caches and in-memory layers).
func (p *scratchPool) put(s *readScratch) {
	if cap(s.r.Entries) > maxScratchEntries || cap(s.vals) > maxScratchEntries {
		return
	}
	clear(s.r.Entries[:cap(s.r.Entries)])
	clear(s.vals[:cap(s.vals)])
	clear(s.chain[:cap(s.chain)])
	s.r.Entries, s.vals, s.chain = s.r.Entries[:0], s.vals[:0], s.chain[:0]
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < maxIdleScratch {
		p.free = append(p.free, s)
	}
}

// readValue searches key's values at at in the pinned chain and
// reconstructs its value. A tombstone is a value of length 0; no value at
// all is ErrNotFound. The chain's versions keep every layer file the search
// reads open, whatever flush, compaction or GC install meanwhile.
//
// If the newest value alone is the answer and is an image (a full-page
// image, a size, a tombstone: Redo of a lone image is that image), val is
// that image itself and shared is true: it belongs to an in-memory layer or
// a layer file's cache and must be copied, never modified or handed out.
// Otherwise val is dst extended by walrec.AppendRedo's result (the value is
// val[len(dst):], owned by the caller). This lets callers copy a page
// exactly once, into wherever it must go.
func readValue(dst []byte, chain []pinned, key keys.Key, at lsn.LSN, s *readScratch) (val []byte, shared bool, err error) {
	if err := search(chain, key, at, &s.r); err != nil {
		return nil, false, err
	}
	es := s.r.Entries
	if len(es) == 0 {
		return nil, false, fmt.Errorf("%w: %s at %s", ErrNotFound, key, at)
	}
	if len(es) == 1 && es[0].Value.Kind == walrec.ValueImage {
		return es[0].Value.Image, true, nil
	}
	s.vals = s.vals[:0]
	for i := len(es) - 1; i >= 0; i-- {
		s.vals = append(s.vals, es[i].Value)
	}
	page, err := walrec.AppendRedo(dst, key, nil, s.vals)
	if errors.Is(err, walrec.ErrNoBase) {
		return nil, false, fmt.Errorf("%w: %s at %s: %w", ErrNotFound, key, at, err)
	}
	if err != nil {
		return nil, false, fmt.Errorf("timeline: reconstruct %s at %s: %w", key, at, err)
	}
	if page == nil {
		page = []byte{} // a tombstone into a nil dst: empty, but a value
	}
	return page, false, nil
}

// beginRead takes a scratch, pins the versions a read at at uses and checks
// the read against them. The caller must endRead(s) (also on error).
func (t *Timeline) beginRead(at lsn.LSN) (*readScratch, error) {
	s := t.tenant.scratch.get()
	var err error
	if s.chain, err = t.pin(s.chain[:0]); err != nil {
		return s, err
	}
	return s, checkRead(s.chain, at)
}

// endRead releases what beginRead pinned and returns the scratch.
func (t *Timeline) endRead(s *readScratch) {
	unpin(s.chain)
	s.chain = s.chain[:0]
	t.tenant.scratch.put(s)
}

// appendPage is readValue for page readers: a tombstone (a dropped
// relation's size key) reads as ErrNotFound, and the page is appended to
// dst (a page rebuilt from deltas is built there by walrec.AppendRedo).
func appendPage(dst []byte, key keys.Key, at lsn.LSN, s *readScratch) ([]byte, error) {
	val, shared, err := readValue(dst, s.chain, key, at, s)
	switch {
	case err != nil:
		return dst, err
	case shared && len(val) == 0 || !shared && len(val) == len(dst):
		return dst, fmt.Errorf("%w: %s dropped at or before %s", ErrNotFound, key, at)
	case shared:
		return append(dst, val...), nil
	}
	return val, nil
}

// GetPage returns key's value as of LSN at: the redo of every record at or
// below at. The page is the caller's.
func (t *Timeline) GetPage(key keys.Key, at lsn.LSN) ([]byte, error) {
	return t.AppendPage(nil, key, at)
}

// AppendPage is GetPage appending the page to dst and returning the
// extended slice (dst unchanged on error). A caller that reuses dst (e.g.
// dst[:0] of the previous page) reads a page whose newest value is an
// image, in memory or in an image layer, without allocating; a page
// rebuilt from deltas is built in dst by walrec.AppendRedo, also without
// allocating when dst has room.
func (t *Timeline) AppendPage(dst []byte, key keys.Key, at lsn.LSN) ([]byte, error) {
	s, err := t.beginRead(at)
	defer t.endRead(s)
	if err != nil {
		return dst, err
	}
	return appendPage(dst, key, at, s)
}

// MaxBatchKeys bounds a vectored read.
const MaxBatchKeys = 1024

// GetPages returns the values of ks as of LSN at, in order. A key without a
// value fails the whole batch with ErrNotFound. The pages are the caller's;
// several may share one backing array (each is clipped to its length, so
// appending to one never changes another).
func (t *Timeline) GetPages(ks []keys.Key, at lsn.LSN) ([][]byte, error) {
	if len(ks) > MaxBatchKeys {
		return nil, fmt.Errorf("timeline: batch of %d keys, max %d", len(ks), MaxBatchKeys)
	}
	s, err := t.beginRead(at)
	defer t.endRead(s)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(ks))
	// Shared images are copied into one buffer with room for a page per
	// remaining key, allocated when first needed; pages rebuilt by Redo
	// are fresh and used as they are.
	var buf []byte
	for i, k := range ks {
		val, shared, err := readValue(nil, s.chain, k, at, s)
		if err == nil && len(val) == 0 {
			err = fmt.Errorf("%w: %s dropped at or before %s", ErrNotFound, k, at)
		}
		if err != nil {
			return nil, err
		}
		if shared {
			if cap(buf)-len(buf) < len(val) {
				buf = make([]byte, 0, max(len(val), (len(ks)-i)*walrec.PageSize))
			}
			start := len(buf)
			buf = append(buf, val...)
			val = buf[start:len(buf):len(buf)]
		}
		out[i] = val
	}
	return out, nil
}

// RelSize returns rel's size in blocks as of LSN at; a relation never
// created or dropped is ErrNotFound.
func (t *Timeline) RelSize(rel keys.RelTag, at lsn.LSN) (uint32, error) {
	s, err := t.beginRead(at)
	defer t.endRead(s)
	if err != nil {
		return 0, err
	}
	img, _, err := readValue(nil, s.chain, keys.RelSizeKey(rel), at, s) // only read
	if err != nil {
		return 0, err
	}
	n, dropped, err := walrec.DecodeSize(img)
	if err != nil {
		return 0, fmt.Errorf("timeline: size of %v: %w", rel, err)
	}
	if dropped {
		return 0, fmt.Errorf("%w: relation %v dropped at or before %s", ErrNotFound, rel, at)
	}
	return n, nil
}
