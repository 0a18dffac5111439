package layercache

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/stratadb/strata/engine/invariants"
)

// Errors of the cache.
var (
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("layercache: invalid config")
	// ErrRemoved reports Acquire of a handle after Remove: its file was
	// (or is being) deleted and is never reopened.
	ErrRemoved = errors.New("layercache: file removed from the cache")
)

// DefaultMaxOpenFiles is Config.MaxOpenFiles's default.
const DefaultMaxOpenFiles = 1000

// Config sizes a Cache. Zero fields take their defaults (withDefaults);
// Validate rejects negative ones.
type Config struct {
	// MaxOpenFiles bounds the files open at once (see the package doc for
	// the one case it is exceeded: every open file pinned). Default
	// DefaultMaxOpenFiles.
	MaxOpenFiles int
}

func (c Config) withDefaults() Config {
	if c.MaxOpenFiles == 0 {
		c.MaxOpenFiles = DefaultMaxOpenFiles
	}
	return c
}

// Validate checks c after defaults are applied (c itself is not changed).
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.MaxOpenFiles < 1 {
		return fmt.Errorf("%w: MaxOpenFiles %d < 1", ErrConfig, c.MaxOpenFiles)
	}
	return nil
}

// Opener opens a handle's file and checks it; it is run on the first
// Acquire and again on every Acquire after the file was evicted.
type Opener func() (io.Closer, error)

// Stats are a cache's counters.
type Stats struct {
	Open    int // files open now, with those being opened or closed
	Peak    int // the most Open has been
	Pinned  int // handles in use (acquired, not yet released)
	Handles int // handles added and not removed
	// Opens counts first opens, Reopens opens after an eviction.
	Opens, Reopens uint64
	// Evictions counts files closed to stay within MaxOpenFiles.
	Evictions uint64
	// OverLimit counts opens that took Open above MaxOpenFiles because no
	// open file was idle.
	OverLimit uint64
}

// Cache is an open-file cache (see the package doc). Create it with New.
type Cache struct {
	max int

	mu   sync.Mutex // guards the fields below and every Handle's; never held across I/O
	idle handleList // open and unpinned, least recently released first
	st   Stats
	// tick counts Acquires across the cache: a handle's lastUse orders
	// every file of the node by recency, open or not (Handle.LastUse).
	tick uint64
}

// New returns an empty cache.
func New(cfg Config) (*Cache, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Cache{max: cfg.MaxOpenFiles}, nil
}

// MaxOpenFiles is the cache's limit.
func (c *Cache) MaxOpenFiles() int { return c.max }

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// Handle is one file in a cache. Its file is open only while acquired or
// idle in the cache.
type Handle struct {
	c    *Cache
	open Opener

	// Guarded by c.mu.
	f          io.Closer // nil while closed
	pins       int
	prev, next *Handle // links in c.idle (idle: open and unpinned)
	idle       bool
	opened     bool // opened once: the next open is a reopen
	removed    bool
	// opening counts Acquires running the opener for h now.
	opening int
	// lastUse is c.tick at the last Acquire (0: never acquired).
	lastUse uint64
}

// Add registers a file opened by open. Nothing is opened until Acquire.
func (c *Cache) Add(open Opener) *Handle {
	c.mu.Lock()
	c.st.Handles++
	c.mu.Unlock()
	return &Handle{c: c, open: open}
}

// Acquire returns h's file, opening it if it is closed, and pins it: it is
// not closed before the matching Release. An open failure is the opener's
// error; after Remove the error is ErrRemoved.
func (h *Handle) Acquire() (io.Closer, error) {
	c := h.c
	c.mu.Lock()
	for {
		if h.removed {
			c.mu.Unlock()
			return nil, ErrRemoved
		}
		if h.f != nil {
			c.pinLocked(h)
			f := h.f
			c.mu.Unlock()
			return f, nil
		}
		// Make room first: close idle files until one more fits. They
		// stay counted until closed, so the count never lags the files
		// actually open; and another task may have taken the room or
		// opened h meanwhile, hence the loop.
		victims := c.evictLocked(c.max - 1)
		if len(victims) == 0 {
			break
		}
		c.mu.Unlock()
		c.closeAll(victims)
		c.mu.Lock()
	}
	c.st.Open++
	c.st.Peak = max(c.st.Peak, c.st.Open)
	if c.st.Open > c.max {
		c.st.OverLimit++ // every open file is pinned (or being opened)
	}
	h.opening++
	c.mu.Unlock()

	f, err := h.open()
	c.mu.Lock()
	h.opening--
	switch {
	case err != nil:
		c.st.Open--
		c.mu.Unlock()
		return nil, err
	case h.removed || h.f != nil:
		// Removed meanwhile, or another task opened it first: this file
		// is surplus.
		var shared io.Closer
		if !h.removed {
			c.pinLocked(h)
			shared = h.f
		}
		c.mu.Unlock()
		_ = f.Close()
		c.mu.Lock()
		c.st.Open--
		c.mu.Unlock()
		if shared == nil {
			return nil, ErrRemoved
		}
		return shared, nil
	}
	if h.opened {
		c.st.Reopens++
	} else {
		c.st.Opens++
	}
	h.f, h.opened = f, true
	c.pinLocked(h)
	c.mu.Unlock()
	return f, nil
}

// Release unpins what Acquire pinned. An idle file becomes the most
// recently used; files above the limit (opened while every file was
// pinned) are closed now; a removed handle's file is closed at its last
// Release.
func (h *Handle) Release() {
	c := h.c
	c.mu.Lock()
	h.pins--
	if h.pins < 0 { // (checked first: the arguments would cost the read path an allocation)
		h.pins = 0
		c.mu.Unlock()
		invariants.Check(false, "layercache: handle released more often than acquired")
		return
	}
	c.st.Pinned--
	if h.pins > 0 {
		c.mu.Unlock()
		return
	}
	if h.removed {
		f := h.f
		h.f = nil
		c.mu.Unlock()
		c.closeAll([]io.Closer{f})
		return
	}
	c.idle.pushBack(h)
	h.idle = true
	victims := c.evictLocked(c.max)
	c.mu.Unlock()
	c.closeAll(victims)
}

// Remove forgets h: its file is closed now, or at the last Release if it
// is pinned, and never reopened (Acquire fails with ErrRemoved). Call it
// before deleting the file. Removing twice is a no-op.
func (h *Handle) Remove() error {
	c := h.c
	c.mu.Lock()
	if h.removed {
		c.mu.Unlock()
		return nil
	}
	h.removed = true
	c.st.Handles--
	if h.pins > 0 {
		c.mu.Unlock()
		return nil
	}
	if h.idle {
		c.idle.remove(h)
		h.idle = false
	}
	f := h.f
	h.f = nil
	c.mu.Unlock()
	if f == nil {
		return nil
	}
	err := f.Close()
	c.mu.Lock()
	c.st.Open--
	c.mu.Unlock()
	return err
}

// CloseIfIdle closes h's file if nobody holds it: no pin and no Acquire
// opening it now. It reports whether h is then closed and unused (false
// also for a removed handle). The cache cannot keep a new Acquire from
// opening h right after; a caller that must change the file underneath
// (engine/timeline evicting a downloaded layer file) makes its opener
// take a lock of its own, holds that lock across CloseIfIdle and the
// change, and so makes such an Acquire wait for it.
func (h *Handle) CloseIfIdle() bool {
	c := h.c
	c.mu.Lock()
	if h.removed || h.pins > 0 || h.opening > 0 {
		c.mu.Unlock()
		return false
	}
	f := h.f
	h.f = nil
	if h.idle {
		c.idle.remove(h)
		h.idle = false
	}
	c.mu.Unlock()
	if f != nil {
		c.closeAll([]io.Closer{f})
	}
	return true
}

// LastUse orders handles by their last Acquire across the whole cache
// (a larger value is more recent; 0 is never acquired): the order in
// which a node evicts whole files from its disk, least recently used
// first.
func (h *Handle) LastUse() uint64 {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return h.lastUse
}

// pinLocked pins an open h, taking it off the idle list.
func (c *Cache) pinLocked(h *Handle) {
	if h.idle {
		c.idle.remove(h)
		h.idle = false
	}
	h.pins++
	c.st.Pinned++
	c.tick++
	h.lastUse = c.tick
}

// evictLocked takes least recently used idle files off their handles until
// at most limit stay open (or none is idle) and returns them for closeAll;
// they stay counted as open until closed.
func (c *Cache) evictLocked(limit int) []io.Closer {
	var victims []io.Closer
	for c.st.Open-len(victims) > limit && c.idle.head != nil {
		h := c.idle.head
		c.idle.remove(h)
		h.idle = false
		victims = append(victims, h.f)
		h.f = nil
		c.st.Evictions++
	}
	return victims
}

// closeAll closes files taken off their handles (outside the lock: a
// close is I/O) and then stops counting them.
func (c *Cache) closeAll(fs []io.Closer) {
	if len(fs) == 0 {
		return
	}
	for _, f := range fs {
		_ = f.Close() // read-only files: nothing to lose
	}
	c.mu.Lock()
	c.st.Open -= len(fs)
	c.mu.Unlock()
}

// handleList is an intrusive doubly linked list of handles.
type handleList struct{ head, tail *Handle }

func (l *handleList) pushBack(h *Handle) {
	h.prev, h.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = h
	} else {
		l.head = h
	}
	l.tail = h
}

func (l *handleList) remove(h *Handle) {
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		l.head = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else {
		l.tail = h.prev
	}
	h.prev, h.next = nil, nil
}
