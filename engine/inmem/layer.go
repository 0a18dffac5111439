package inmem

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
)

// Errors returned by the layer.
var (
	// ErrFrozen reports a Put into a frozen layer or a second Freeze.
	ErrFrozen = errors.New("inmem: layer is frozen")
	// ErrOutOfOrder reports a Put whose LSN goes backwards.
	ErrOutOfOrder = errors.New("inmem: LSN out of order")
	// ErrNotFrozen reports iteration of a layer that is still open.
	ErrNotFrozen = errors.New("inmem: layer is not frozen")
	// ErrBadFreeze reports a freeze LSN that does not lie above every held LSN.
	ErrBadFreeze = errors.New("inmem: bad freeze LSN")
)

// EntryOverheadBytes is what SizeBytes charges for each entry on top of the
// value's own size: the key, the LSN and the index slot.
const EntryOverheadBytes = 48

// Entry is one value of one key at one LSN.
type Entry[V any] struct {
	LSN lsn.LSN
	// WillInit reports that Value alone determines the page (an image or a
	// record that initialises the page): reconstruction stops here.
	WillInit bool
	Value    V
}

// KeyEntry is an Entry together with its key, as produced by iteration.
type KeyEntry[V any] struct {
	Key keys.Key
	Entry[V]
}

// Info describes a value to the layer: whether it initialises the page and
// its size in bytes.
type Info[V any] func(v V) (willInit bool, sizeBytes int)

type chain[V any] struct {
	entries []Entry[V]
}

// Layer is an in-memory layer. It is safe for concurrent use: one writer and
// any number of readers; every critical section is pure memory work.
type Layer[V any] struct {
	info  Info[V]
	start lsn.LSN

	mu        sync.RWMutex
	end       lsn.LSN
	frozen    bool
	last      lsn.LSN // newest LSN put, or Invalid
	first     lsn.LSN // oldest LSN put, or Invalid
	chains    map[keys.Key]*chain[V]
	sorted    []keys.Key // filled at Freeze
	count     int
	sizeBytes int64
}

// New returns an open layer that accepts LSNs ≥ start.
func New[V any](start lsn.LSN, info Info[V]) *Layer[V] {
	return &Layer[V]{info: info, start: start, end: lsn.Max, chains: make(map[keys.Key]*chain[V])}
}

// Start is the lowest LSN the layer may hold.
func (l *Layer[V]) Start() lsn.LSN {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.start
}

// ErrBadStart reports a RaiseStart the layer cannot take.
var ErrBadStart = errors.New("inmem: cannot raise the layer's start")

// RaiseStart moves an open layer's start up to s: it then claims no LSN
// below s. It fails if the layer is frozen or holds an entry below s. A
// timeline uses it when disk_consistent_lsn moves past records that
// changed no page while the open layer, empty until then, took a record
// above them.
func (l *Layer[V]) RaiseStart(s lsn.LSN) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.frozen:
		return fmt.Errorf("%w: frozen", ErrBadStart)
	case l.count > 0 && l.first < s:
		return fmt.Errorf("%w: holds %s, below %s", ErrBadStart, l.first, s)
	}
	l.start = max(l.start, s)
	return nil
}

// End is the exclusive end of the layer's LSN range (lsn.Max while open).
func (l *Layer[V]) End() lsn.LSN {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.end
}

// Frozen reports whether Freeze has been called.
func (l *Layer[V]) Frozen() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.frozen
}

// LastLSN is the newest LSN held, or lsn.Invalid if the layer is empty.
func (l *Layer[V]) LastLSN() lsn.LSN {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.last
}

// Len is the number of entries held.
func (l *Layer[V]) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.count
}

// SizeBytes is the accounted size of the layer (values plus overhead).
func (l *Layer[V]) SizeBytes() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.sizeBytes
}

// Put adds key's value at LSN at. LSNs must not go backwards across calls,
// and a key may hold at most one value per LSN.
func (l *Layer[V]) Put(key keys.Key, at lsn.LSN, v V) error {
	willInit, size := l.info(v)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.frozen {
		return ErrFrozen
	}
	if at < l.start || at < l.last || at == lsn.Max {
		return fmt.Errorf("%w: %s after %s (layer start %s)", ErrOutOfOrder, at, l.last, l.start)
	}
	c := l.chains[key]
	if c == nil {
		c = &chain[V]{}
		l.chains[key] = c
	} else if n := len(c.entries); n > 0 && c.entries[n-1].LSN >= at {
		return fmt.Errorf("%w: key %s already has a value at %s", ErrOutOfOrder, key, c.entries[n-1].LSN)
	}
	c.entries = append(c.entries, Entry[V]{LSN: at, WillInit: willInit, Value: v})
	if l.count == 0 {
		l.first = at
	}
	l.last = at
	l.count++
	l.sizeBytes += int64(size) + EntryOverheadBytes
	return nil
}

// Freeze closes the layer at the exclusive end LSN end, which must be above
// every LSN held and above Start. After Freeze the layer is immutable.
func (l *Layer[V]) Freeze(end lsn.LSN) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.frozen {
		return ErrFrozen
	}
	if end <= l.start || (l.count > 0 && end <= l.last) {
		return fmt.Errorf("%w: %s (start %s, last %s)", ErrBadFreeze, end, l.start, l.last)
	}
	l.end = end
	l.frozen = true
	l.sorted = slices.SortedFunc(maps.Keys(l.chains), keys.Key.Compare)
	return nil
}

// Collect appends to dst key's values with LSN in [lo, hi), newest first,
// stopping after the first value that initialises the page; it reports
// whether such a value was found.
func (l *Layer[V]) Collect(key keys.Key, lo, hi lsn.LSN, dst []Entry[V]) ([]Entry[V], bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	c := l.chains[key]
	if c == nil {
		return dst, false
	}
	es := c.entries
	// First index with LSN ≥ hi; everything before it is below hi.
	i, _ := slices.BinarySearchFunc(es, hi, func(e Entry[V], t lsn.LSN) int {
		switch {
		case e.LSN < t:
			return -1
		case e.LSN > t:
			return 1
		}
		return 0
	})
	for i--; i >= 0 && es[i].LSN >= lo; i-- {
		dst = append(dst, es[i])
		if es[i].WillInit {
			return dst, true
		}
	}
	return dst, false
}

// Keys returns the keys held, sorted. For a frozen layer the slice is shared
// (do not modify); for an open layer it is a fresh copy.
func (l *Layer[V]) Keys() []keys.Key {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.frozen {
		return l.sorted
	}
	return slices.SortedFunc(maps.Keys(l.chains), keys.Key.Compare)
}

// KeysIn returns the keys held in r, sorted. For a frozen layer the slice
// is shared (do not modify); for an open layer it is a fresh copy holding
// only r's keys, so a scan of a small range does not copy and sort every
// key of the layer.
func (l *Layer[V]) KeysIn(r keys.Range) []keys.Key {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.frozen {
		lo, _ := slices.BinarySearchFunc(l.sorted, r.Start, keys.Key.Compare)
		hi, _ := slices.BinarySearchFunc(l.sorted, r.End, keys.Key.Compare)
		return l.sorted[lo:max(lo, hi):max(lo, hi)]
	}
	var out []keys.Key
	//strata:nondeterministic the keys collected are sorted before they are returned
	for k := range l.chains {
		if r.Contains(k) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, keys.Key.Compare)
	return out
}

// Iterate calls fn for every entry in (key, LSN) order, stopping at the first
// error. The layer must be frozen (an open layer's order is not settled).
func (l *Layer[V]) Iterate(fn func(KeyEntry[V]) error) error {
	l.mu.RLock()
	frozen, sorted := l.frozen, l.sorted
	l.mu.RUnlock()
	if !frozen {
		return ErrNotFrozen
	}
	// A frozen layer never changes, so no lock is needed from here on.
	for _, k := range sorted {
		for _, e := range l.chains[k].entries {
			if err := fn(KeyEntry[V]{Key: k, Entry: e}); err != nil {
				return err
			}
		}
	}
	return nil
}
