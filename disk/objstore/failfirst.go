package objstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// FailFirst wraps a Store so that each distinct operation fails its first N
// attempts with ErrTransient, before reaching the inner store (nothing
// happened), and then behaves normally. It is the deterministic
// counterpart of Faulty, for testing that callers retry: no randomness, so
// the same calls always meet the same failures. An operation is its kind
// and its keys: Get and GetRange of a key are both "get" of that key (a
// download), Put, Head and Copy are named by their keys, Delete by its key
// batch, List by its prefix and the page it resumes after.
//
// It remembers every operation it has seen, so its memory grows with the
// number of distinct operations: meant for tests and test deployments, not
// for production.
type FailFirst struct {
	inner Store
	n     int

	mu       sync.Mutex
	attempts map[string]int // only looked up, never iterated
	injected int
}

var _ Store = (*FailFirst)(nil)

// NewFailFirst wraps inner so that each distinct operation fails its first
// n attempts (n = 0: a pass-through).
func NewFailFirst(inner Store, n int) (*FailFirst, error) {
	if n < 0 {
		return nil, fmt.Errorf("objstore: NewFailFirst: n = %d is negative", n)
	}
	if inner == nil {
		return nil, fmt.Errorf("objstore: NewFailFirst needs a store to wrap")
	}
	return &FailFirst{inner: inner, n: n, attempts: map[string]int{}}, nil
}

// Injected reports how many failures have been injected so far.
func (f *FailFirst) Injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected
}

// check counts an attempt of the operation and returns the injected error
// while it is among its first n.
func (f *FailFirst) check(kind, name string, keys ...string) error {
	id := kind + "\x00" + strings.Join(keys, "\x00")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts[id]++
	a := f.attempts[id]
	if a > f.n {
		return nil
	}
	f.injected++
	return fmt.Errorf("objstore: fail-first %s %q: %w (injected: attempt %d of %d that fail)", kind, name, ErrTransient, a, f.n)
}

// Put implements Store.
func (f *FailFirst) Put(ctx context.Context, key string, data []byte, opts PutOptions) error {
	if err := f.check("put", key, key); err != nil {
		return err
	}
	return f.inner.Put(ctx, key, data, opts)
}

// Get implements Store.
func (f *FailFirst) Get(ctx context.Context, key string) ([]byte, error) {
	if err := f.check("get", key, key); err != nil {
		return nil, err
	}
	return f.inner.Get(ctx, key)
}

// GetRange implements Store.
func (f *FailFirst) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	if err := f.check("get", key, key); err != nil {
		return nil, err
	}
	return f.inner.GetRange(ctx, key, offset, length)
}

// Head implements Store.
func (f *FailFirst) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := f.check("head", key, key); err != nil {
		return ObjectInfo{}, err
	}
	return f.inner.Head(ctx, key)
}

// List implements Store.
func (f *FailFirst) List(ctx context.Context, prefix string, opts ListOptions) (Page, error) {
	if err := f.check("list", prefix, prefix, opts.StartAfter); err != nil {
		return Page{}, err
	}
	return f.inner.List(ctx, prefix, opts)
}

// Delete implements Store.
func (f *FailFirst) Delete(ctx context.Context, keys []string) error {
	name := ""
	if len(keys) > 0 {
		name = keys[0]
	}
	if err := f.check("delete", name, keys...); err != nil {
		return err
	}
	return f.inner.Delete(ctx, keys)
}

// Copy implements Store.
func (f *FailFirst) Copy(ctx context.Context, src, dst string) error {
	if err := f.check("copy", src, src, dst); err != nil {
		return err
	}
	return f.inner.Copy(ctx, src, dst)
}
