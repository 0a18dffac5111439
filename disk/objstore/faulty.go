package objstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// FaultConfig sets Faulty's fault rates (probabilities in [0, 1] per call)
// and latency. The zero value injects nothing.
type FaultConfig struct {
	// LatencyMin and LatencyMax bound a uniformly drawn delay before every
	// call (both zero: none).
	LatencyMin, LatencyMax time.Duration
	// Throttle fails a call with ErrThrottled before it runs.
	Throttle float64
	// TransientBefore fails a call with ErrTransient before it runs:
	// nothing happened.
	TransientBefore float64
	// TransientAfter runs the call, then discards its result and reports
	// ErrTransient: the operation took effect but the caller cannot know.
	// This is the fault that makes retries meet their own earlier success
	// (a conditional Put then fails with ErrPreconditionFailed).
	TransientAfter float64
	// Missing makes Get, GetRange and Head of an existing object report
	// ErrNotFound, as a stale replica would. S3 is strongly consistent, so
	// this is only recoverable by callers designed to re-check (for example
	// ones that list, or retry a read of a key their index names); it is off
	// unless set, and a simulator should enable it only where the callers
	// under test claim to cope (faults must be recoverable by design:
	// docs/simulator.md, Recoverable faults).
	Missing float64
}

// Validate reports a configuration that cannot be applied.
func (c FaultConfig) Validate() error {
	for _, r := range []struct {
		name string
		p    float64
	}{{"Throttle", c.Throttle}, {"TransientBefore", c.TransientBefore}, {"TransientAfter", c.TransientAfter}, {"Missing", c.Missing}} {
		if r.p < 0 || r.p > 1 {
			return fmt.Errorf("objstore: fault rate %s = %v outside [0, 1]", r.name, r.p)
		}
	}
	if c.LatencyMin < 0 || c.LatencyMax < c.LatencyMin {
		return fmt.Errorf("objstore: fault latency range [%v, %v] is invalid", c.LatencyMin, c.LatencyMax)
	}
	return nil
}

// FaultStats counts the faults Faulty injected.
type FaultStats struct {
	Calls, Throttled, TransientBefore, TransientAfter, Missing int
}

// Faulty wraps a Store and injects the object-store faults of the fault
// catalogue. Every decision comes from the rng it is given, drawn in call
// order under a mutex, so a deterministic caller gets deterministic faults.
// Sleep is the caller's clock (the simulator's virtual time); the mutex is
// never held across it or across the inner store.
type Faulty struct {
	inner Store
	sleep func(ctx context.Context, d time.Duration) error

	mu    sync.Mutex
	cfg   FaultConfig
	rng   *rand.Rand
	stats FaultStats
}

var _ Store = (*Faulty)(nil)

// NewFaulty wraps inner. sleep may be nil if cfg has no latency.
func NewFaulty(inner Store, cfg FaultConfig, rng *rand.Rand, sleep func(ctx context.Context, d time.Duration) error) (*Faulty, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rng == nil {
		return nil, fmt.Errorf("objstore: NewFaulty needs a rng")
	}
	if sleep == nil && cfg.LatencyMax > 0 {
		return nil, fmt.Errorf("objstore: NewFaulty with latency needs a sleep function")
	}
	return &Faulty{inner: inner, cfg: cfg, rng: rng, sleep: sleep}, nil
}

// SetConfig replaces the fault configuration (for example to heal all
// faults before a liveness phase).
func (f *Faulty) SetConfig(cfg FaultConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if f.sleep == nil && cfg.LatencyMax > 0 {
		return fmt.Errorf("objstore: Faulty has no sleep function for latency")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = cfg
	return nil
}

// Stats returns the fault counts so far.
func (f *Faulty) Stats() FaultStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// plan is the fault decision for one call, drawn up front.
type plan struct {
	latency          time.Duration
	throttle, before bool
	after, missing   bool
}

func (f *Faulty) draw(p float64) bool {
	return p > 0 && f.rng.Float64() < p
}

func (f *Faulty) plan(read bool) plan {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.cfg
	var p plan
	p.latency = c.LatencyMin
	if c.LatencyMax > c.LatencyMin {
		p.latency += time.Duration(f.rng.Int64N(int64(c.LatencyMax - c.LatencyMin + 1)))
	}
	f.stats.Calls++
	switch {
	case f.draw(c.Throttle):
		p.throttle = true
		f.stats.Throttled++
	case f.draw(c.TransientBefore):
		p.before = true
		f.stats.TransientBefore++
	case read && f.draw(c.Missing):
		p.missing = true
		f.stats.Missing++
	case f.draw(c.TransientAfter):
		p.after = true
		f.stats.TransientAfter++
	}
	return p
}

// do runs op under a drawn plan. op reports whether it succeeded, so a
// Missing fault applies only to objects that exist.
func (f *Faulty) do(ctx context.Context, name, key string, read bool, op func() error) error {
	p := f.plan(read)
	if p.latency > 0 {
		if err := f.sleep(ctx, p.latency); err != nil {
			return fmt.Errorf("objstore: faulty %s %q: %w: %w", name, key, ErrTransient, err)
		}
	}
	switch {
	case p.throttle:
		return fmt.Errorf("objstore: faulty %s %q: %w (injected)", name, key, ErrThrottled)
	case p.before:
		return fmt.Errorf("objstore: faulty %s %q: %w (injected before the operation)", name, key, ErrTransient)
	}
	err := op()
	switch {
	case err != nil:
		return err
	case p.missing:
		return fmt.Errorf("objstore: faulty %s %q: %w (injected)", name, key, ErrNotFound)
	case p.after:
		return fmt.Errorf("objstore: faulty %s %q: %w (injected after the operation took effect)", name, key, ErrTransient)
	}
	return nil
}

// Put implements Store.
func (f *Faulty) Put(ctx context.Context, key string, data []byte, opts PutOptions) error {
	return f.do(ctx, "put", key, false, func() error { return f.inner.Put(ctx, key, data, opts) })
}

// Get implements Store.
func (f *Faulty) Get(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	err := f.do(ctx, "get", key, true, func() (err error) { out, err = f.inner.Get(ctx, key); return err })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetRange implements Store.
func (f *Faulty) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	var out []byte
	err := f.do(ctx, "get", key, true, func() (err error) { out, err = f.inner.GetRange(ctx, key, offset, length); return err })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Head implements Store.
func (f *Faulty) Head(ctx context.Context, key string) (ObjectInfo, error) {
	var out ObjectInfo
	err := f.do(ctx, "head", key, true, func() (err error) { out, err = f.inner.Head(ctx, key); return err })
	if err != nil {
		return ObjectInfo{}, err
	}
	return out, nil
}

// List implements Store.
func (f *Faulty) List(ctx context.Context, prefix string, opts ListOptions) (Page, error) {
	var out Page
	err := f.do(ctx, "list", prefix, false, func() (err error) { out, err = f.inner.List(ctx, prefix, opts); return err })
	if err != nil {
		return Page{}, err
	}
	return out, nil
}

// Delete implements Store.
func (f *Faulty) Delete(ctx context.Context, keys []string) error {
	key := ""
	if len(keys) > 0 {
		key = keys[0]
	}
	return f.do(ctx, "delete", key, false, func() error { return f.inner.Delete(ctx, keys) })
}

// Copy implements Store.
func (f *Faulty) Copy(ctx context.Context, src, dst string) error {
	return f.do(ctx, "copy", src, false, func() error { return f.inner.Copy(ctx, src, dst) })
}
