package timeline

import (
	"container/heap"
	"errors"
	"slices"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
)

// Scanner reads every key of a key range that has a value as of one LSN, in
// key order (Timeline.Scan). It pins the versions of the timeline and of
// its ancestors when it is made and holds them until Close, so the whole
// scan reads one consistent layer set whatever flush, compaction and GC
// install meanwhile (and GC deletes no file it reads).
//
// What it returns is what GetPage would: the redo of every record at or
// below the LSN. Keys without a value there are skipped: never written,
// written only above it, or a tombstone (a dropped relation's size key). A
// dropped relation's blocks are not hidden (ingest leaves them in place,
// docs/wal-records.md): callers that care read the size key.
//
// Memory: a scan keeps one cursor per layer that may hold keys of the
// range, the keys of the range held by the open in-memory layer (copied
// when the scan starts; at most what one checkpoint distance of WAL
// wrote), and one value at a time: nothing grows with the number of keys
// returned. A Scanner is used by one task at a time and must be closed.
type Scanner struct {
	t    *Timeline
	s    *readScratch // holds the pinned chain
	r    keys.Range
	at   lsn.LSN
	srcs keyHeap
	// from is where the scan stands: every key below it has been returned
	// or skipped, so the next key returned is at or above it.
	from keys.Key
	buf  []byte // reused for values rebuilt by redo
	key  keys.Key
	val  []byte
	err  error
	done bool // closed
}

// keySource walks the keys one layer holds, in order: a layer file through
// its index, or the keys of the range an in-memory layer held when the
// scan started.
type keySource struct {
	file *fileLayer
	ks   []keys.Key // in-memory layer: its keys in the range, from the cursor on
	cur  keys.Key   // the source's smallest key at or after the last seek
}

// seek moves the source to its smallest key at or after k; false if none.
// A layer file's reader may have to be reopened (engine/layercache), which
// can fail.
func (src *keySource) seek(k keys.Key) (bool, error) {
	if src.file != nil {
		var ok bool
		var err error
		src.cur, ok, err = src.file.seekKey(k)
		return ok, err
	}
	i, _ := slices.BinarySearchFunc(src.ks, k, keys.Key.Compare)
	src.ks = src.ks[i:]
	if len(src.ks) == 0 {
		return false, nil
	}
	src.cur = src.ks[0]
	return true, nil
}

// keyHeap orders the sources by their current key (container/heap).
type keyHeap []*keySource

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].cur.Less(h[j].cur) }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(*keySource)) }
func (h *keyHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return x
}

// Scan starts a scan of the keys of r (half-open) as of LSN at. The read is
// checked as GetPage's is: LSN 0 is ErrInvalidLSN, below the GC cutoff
// ErrBelowGCCutoff, above the last record ErrFutureLSN. The caller must
// Close the Scanner (which releases the versions it pinned).
func (t *Timeline) Scan(r keys.Range, at lsn.LSN) (*Scanner, error) {
	s, err := t.beginRead(at)
	if err != nil {
		t.endRead(s)
		return nil, err
	}
	sc := &Scanner{t: t, s: s, r: r, at: at, from: r.Start}
	if !r.Start.Less(r.End) {
		return sc, nil
	}
	// The layers that may hold a value of the range at or below at: the
	// timeline's own, then each ancestor's at or below its branch point
	// (as keysAt and the read path's search choose them).
	bound := at
	for i := range s.chain {
		m := s.chain[i].v.layers
		for _, l := range m.Historic() {
			if d := l.Desc(); d.LSNs.Start <= bound && d.Keys.Overlaps(r) {
				if err := sc.add(&keySource{file: l.(*fileLayer)}); err != nil {
					sc.Close()
					return nil, err
				}
			}
		}
		for _, f := range m.Frozen() {
			if f.Start() <= bound {
				_ = sc.add(&keySource{ks: f.KeysIn(r)}) // in memory: cannot fail
			}
		}
		if o := m.Open(); o != nil && o.Start() <= bound {
			_ = sc.add(&keySource{ks: o.KeysIn(r)}) // in memory: cannot fail
		}
		bound = min(bound, s.chain[i].v.tl.ancestorLSN)
	}
	heap.Init(&sc.srcs)
	return sc, nil
}

// add puts src in the heap if it holds a key of the range at or after the
// scan's position (the heap is fixed up by the caller).
func (sc *Scanner) add(src *keySource) error {
	ok, err := src.seek(sc.from)
	if ok && src.cur.Less(sc.r.End) {
		sc.srcs = append(sc.srcs, src)
	}
	return err
}

// Next moves to the next key with a value; false at the end of the range,
// after an error (see Err) or once closed.
func (sc *Scanner) Next() bool {
	sc.key, sc.val = keys.Key{}, nil
	if sc.err != nil || sc.done {
		return false
	}
	for len(sc.srcs) > 0 {
		k := sc.srcs[0].cur
		// k < r.End <= keys.Max, so k.Next() is above k.
		next := k.Next()
		for len(sc.srcs) > 0 && sc.srcs[0].cur == k {
			src := sc.srcs[0]
			ok, err := src.seek(next)
			if err != nil {
				sc.err = err
				return false
			}
			if ok && src.cur.Less(sc.r.End) {
				heap.Fix(&sc.srcs, 0)
			} else {
				heap.Pop(&sc.srcs)
			}
		}
		sc.from = next
		val, ok, err := sc.read(k)
		if err != nil {
			sc.err = err
			return false
		}
		if ok {
			sc.key, sc.val = k, val
			return true
		}
	}
	return false
}

// read returns k's value at the scan's LSN; ok is false if it has none.
func (sc *Scanner) read(k keys.Key) ([]byte, bool, error) {
	val, shared, err := readValue(sc.buf[:0], sc.s.chain, k, sc.at, sc.s)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case !shared:
		sc.buf = val[:0] // keep the grown buffer for the next value
	}
	if len(val) == 0 {
		return nil, false, nil // a tombstone: the key is gone at this LSN
	}
	return val, true, nil
}

// Seek makes the next call of Next return the first key at or after k
// with a value (Seek only moves forward: a k at or below the scan's
// position changes nothing). It lets a caller skip what it does not need,
// e.g. a relation's blocks on the way to its size key, in O(layers ×
// log keys) instead of reading every key in between.
func (sc *Scanner) Seek(k keys.Key) {
	if sc.err != nil || sc.done || !sc.from.Less(k) {
		return
	}
	sc.from = k
	kept := sc.srcs[:0]
	for _, src := range sc.srcs {
		if !src.cur.Less(k) {
			kept = append(kept, src)
			continue
		}
		ok, err := src.seek(k)
		if err != nil {
			sc.err = err
			return
		}
		if ok && src.cur.Less(sc.r.End) {
			kept = append(kept, src)
		}
	}
	clear(sc.srcs[len(kept):])
	sc.srcs = kept
	heap.Init(&sc.srcs)
}

// Key is the current key (valid after Next returned true).
func (sc *Scanner) Key() keys.Key { return sc.key }

// Value is the current key's value. It is read-only (it may be shared with
// a layer's cache) and valid only until the next call of Next, Seek or
// Close: copy what must be kept.
func (sc *Scanner) Value() []byte { return sc.val }

// Err is the error that ended the scan, if any.
func (sc *Scanner) Err() error { return sc.err }

// Close releases the versions the scan pinned. It may be called more than
// once.
func (sc *Scanner) Close() {
	if sc.done {
		return
	}
	sc.done = true
	sc.key, sc.val, sc.buf = keys.Key{}, nil, nil
	clear(sc.srcs)
	sc.srcs = nil
	sc.t.endRead(sc.s)
	sc.s = nil
}

// ScanRange calls fn for every key of r (half-open) with a value as of LSN
// at, in key order, reading one pinned layer set throughout (see Scanner).
// val is read-only and valid only during the call. An error from fn stops
// the scan and is returned as it is. Memory does not grow with the number
// of keys: values are handed to fn one at a time.
func (t *Timeline) ScanRange(r keys.Range, at lsn.LSN, fn func(k keys.Key, val []byte) error) error {
	sc, err := t.Scan(r, at)
	if err != nil {
		return err
	}
	defer sc.Close()
	for sc.Next() {
		if err := fn(sc.Key(), sc.Value()); err != nil {
			return err
		}
	}
	return sc.Err()
}
