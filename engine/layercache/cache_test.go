package layercache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/sim"
)

// files stands in for the disk: it knows which fake files are open.
type files struct {
	open   map[int]int // file id → open copies
	opens  []int       // ids in the order they were opened
	fail   map[int]error
	before func() // runs inside every open (the sim tests sleep there)
}

func newFiles() *files { return &files{open: map[int]int{}, fail: map[int]error{}} }

type fakeFile struct {
	fs     *files
	id     int
	closed bool
}

func (f *fakeFile) Close() error {
	if f.closed {
		return errors.New("closed twice")
	}
	f.closed = true
	f.fs.open[f.id]--
	return nil
}

func (fs *files) opener(id int) Opener {
	return func() (io.Closer, error) {
		if fs.before != nil {
			fs.before()
		}
		if err := fs.fail[id]; err != nil {
			return nil, err
		}
		fs.open[id]++
		fs.opens = append(fs.opens, id)
		return &fakeFile{fs: fs, id: id}, nil
	}
}

func (fs *files) total() int {
	n := 0
	for _, c := range fs.open {
		n += c
	}
	return n
}

// openIDs lists the ids with an open file, sorted.
func (fs *files) openIDs() []int {
	var ids []int
	for id, c := range fs.open {
		if c > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func newCache(t *testing.T, max int) *Cache {
	t.Helper()
	c, err := New(Config{MaxOpenFiles: max})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func use(t *testing.T, h *Handle) {
	t.Helper()
	if _, err := h.Acquire(); err != nil {
		t.Fatal(err)
	}
	h.Release()
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		max  int
		want int
		err  bool
	}{
		{0, DefaultMaxOpenFiles, false},
		{1, 1, false},
		{7, 7, false},
		{-1, 0, true},
	} {
		cfg := Config{MaxOpenFiles: tc.max}
		err := cfg.Validate()
		if tc.err != errors.Is(err, ErrConfig) || cfg.MaxOpenFiles != tc.max {
			t.Errorf("Validate(%d) = %v (config now %d)", tc.max, err, cfg.MaxOpenFiles)
			continue
		}
		c, err := New(cfg)
		if tc.err {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("New(%d): %v, want ErrConfig", tc.max, err)
			}
			continue
		}
		if err != nil || c.MaxOpenFiles() != tc.want {
			t.Errorf("New(%d): limit %v, %v; want %d", tc.max, c.MaxOpenFiles(), err, tc.want)
		}
	}
}

// TestCacheTable runs scripted operations on handles 0..4 and checks which
// files are open after each step.
func TestCacheTable(t *testing.T) {
	type step struct {
		op   string // "use", "acq", "rel", "rm", "fail" (next open of h fails)
		h    int
		open []int // ids with an open file afterwards
	}
	for _, tc := range []struct {
		name  string
		max   int
		steps []step
		want  Stats // Open, Pinned, Handles, Opens, Reopens, Evictions, OverLimit (Peak checked ≤ max unless over)
	}{
		{
			name: "limit honoured, least recently used evicted",
			max:  3,
			steps: []step{
				{"use", 0, []int{0}}, {"use", 1, []int{0, 1}}, {"use", 2, []int{0, 1, 2}},
				{"use", 3, []int{1, 2, 3}}, // 0 was least recently used
				{"use", 1, []int{1, 2, 3}}, // a hit: 1 becomes the most recent
				{"use", 4, []int{1, 3, 4}}, // so 2 goes, not 1
				{"use", 0, []int{0, 1, 4}}, // reopen of 0 evicts 3
			},
			want: Stats{Open: 3, Handles: 5, Opens: 5, Reopens: 1, Evictions: 3},
		},
		{
			name: "pinned files are never evicted; the excess goes at release",
			max:  2,
			steps: []step{
				{"acq", 0, []int{0}}, {"acq", 1, []int{0, 1}},
				{"acq", 2, []int{0, 1, 2}}, // every open file pinned: over the limit
				{"use", 3, []int{0, 1, 2}}, // over the limit too, and closed at its release
				{"rel", 1, []int{0, 2}},    // over the limit: closed at once
				{"rel", 0, []int{0, 2}},    // within the limit now: stays open
				{"rel", 2, []int{0, 2}},
				{"use", 4, []int{2, 4}}, // 0 (released before 2) is older
			},
			want: Stats{Open: 2, Handles: 5, Opens: 5, Evictions: 3, OverLimit: 2},
		},
		{
			name: "a pinned file is shared, and stays pinned until its last release",
			max:  1,
			steps: []step{
				{"acq", 0, []int{0}}, {"acq", 0, []int{0}},
				{"rel", 0, []int{0}}, {"acq", 1, []int{0, 1}}, // 0 still pinned once
				{"rel", 0, []int{1}}, // idle and over the limit now: closed
				{"rel", 1, []int{1}},
			},
			want: Stats{Open: 1, Handles: 5, Opens: 2, Evictions: 1, OverLimit: 1},
		},
		{
			name: "removed handles: closed now if idle, at the last release if pinned",
			max:  3,
			steps: []step{
				{"use", 0, []int{0}}, {"acq", 1, []int{0, 1}},
				{"rm", 0, []int{1}}, {"rm", 1, []int{1}}, {"rel", 1, nil},
				{"rm", 2, nil}, // never opened
				{"use", 3, []int{3}},
			},
			want: Stats{Open: 1, Handles: 2, Opens: 3},
		},
		{
			name: "a failed reopen leaves the handle closed and the count right",
			max:  1,
			steps: []step{
				{"use", 0, []int{0}}, {"use", 1, []int{1}},
				{"fail", 0, nil}, // Acquire of 0 fails (after 1 was closed to make room)
				{"use", 1, []int{1}},
				{"use", 0, []int{0}}, // the failure is gone: reopened
			},
			want: Stats{Open: 1, Handles: 5, Opens: 2, Reopens: 2, Evictions: 3},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFiles()
			c := newCache(t, tc.max)
			hs := make([]*Handle, 5)
			for i := range hs {
				hs[i] = c.Add(fs.opener(i))
			}
			for i, s := range tc.steps {
				h := hs[s.h]
				switch s.op {
				case "use":
					use(t, h)
				case "acq":
					if _, err := h.Acquire(); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				case "rel":
					h.Release()
				case "rm":
					if err := h.Remove(); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if _, err := h.Acquire(); !errors.Is(err, ErrRemoved) {
						t.Fatalf("step %d: Acquire after Remove: %v, want ErrRemoved", i, err)
					}
				case "fail":
					boom := errors.New("corrupt header")
					fs.fail[s.h] = boom
					if _, err := h.Acquire(); !errors.Is(err, boom) {
						t.Fatalf("step %d: Acquire: %v, want the opener's error", i, err)
					}
					delete(fs.fail, s.h)
				}
				if got := fs.openIDs(); !slices.Equal(got, s.open) {
					t.Fatalf("step %d (%s %d): open files %v, want %v", i, s.op, s.h, got, s.open)
				}
				if st := c.Stats(); st.Open != fs.total() {
					t.Fatalf("step %d: Stats.Open %d, files open %d", i, st.Open, fs.total())
				}
			}
			st := c.Stats()
			if st.Peak > tc.max && tc.want.OverLimit == 0 {
				t.Errorf("peak %d above the limit %d", st.Peak, tc.max)
			}
			st.Peak = 0
			if st != tc.want {
				t.Errorf("stats %+v, want %+v", st, tc.want)
			}
		})
	}
}

// TestCacheMatchesModel runs random operations against a model of the LRU
// list: after each, the files open are exactly the model's, never more
// than the limit or the pinned handles, and a pinned handle's file is the
// one it was given.
func TestCacheMatchesModel(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		max := 1 + rng.IntN(5)
		fs := newFiles()
		c := newCache(t, max)
		const n = 12
		hs := make([]*Handle, n)
		for i := range hs {
			hs[i] = c.Add(fs.opener(i))
		}
		pins := make([]int, n)
		held := make([][]io.Closer, n)
		var lru []int // model: idle open handles, least recent first
		isOpen := make([]bool, n)
		removed := make([]bool, n)
		for step := 0; step < 400; step++ {
			i := rng.IntN(n)
			switch op := rng.IntN(10); {
			case op < 5 && !removed[i]: // acquire
				f, err := hs[i].Acquire()
				if err != nil {
					t.Fatalf("seed %d step %d: %v", seed, step, err)
				}
				if len(held[i]) > 0 && f != held[i][0] {
					t.Fatalf("seed %d step %d: handle %d pinned twice got two files", seed, step, i)
				}
				held[i] = append(held[i], f)
				pins[i]++
				if !isOpen[i] {
					isOpen[i] = true
					// Room: idle files closed, least recent first, while
					// the limit is reached.
					for open(isOpen) > max && len(lru) > 0 {
						isOpen[lru[0]] = false
						lru = lru[1:]
					}
				}
				lru = slices.DeleteFunc(lru, func(x int) bool { return x == i })
			case op < 9 && pins[i] > 0: // release
				hs[i].Release()
				pins[i]--
				held[i] = held[i][:len(held[i])-1]
				if pins[i] == 0 {
					if removed[i] {
						isOpen[i] = false
					} else {
						lru = append(lru, i)
						for open(isOpen) > max && len(lru) > 0 {
							isOpen[lru[0]] = false
							lru = lru[1:]
						}
					}
				}
			case op == 9 && !removed[i]: // remove
				if err := hs[i].Remove(); err != nil {
					t.Fatal(err)
				}
				removed[i] = true
				if pins[i] == 0 {
					isOpen[i] = false
					lru = slices.DeleteFunc(lru, func(x int) bool { return x == i })
				}
			}
			var want []int
			pinned := 0
			for j := range isOpen {
				if isOpen[j] {
					want = append(want, j)
				}
				if pins[j] > 0 {
					pinned++
				}
			}
			if got := fs.openIDs(); !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d: open %v, model %v", seed, step, got, want)
			}
			if got := fs.total(); got > max && got > pinned {
				t.Fatalf("seed %d step %d: %d files open, limit %d, %d pinned", seed, step, got, max, pinned)
			}
			for j := range held {
				for _, f := range held[j] {
					if f.(*fakeFile).closed {
						t.Fatalf("seed %d step %d: handle %d's pinned file was closed", seed, step, j)
					}
				}
			}
			if st := c.Stats(); st.Open != fs.total() || st.Pinned != pinnedCount(pins) {
				t.Fatalf("seed %d step %d: stats %+v, %d files open", seed, step, st, fs.total())
			}
		}
	}
}

func open(isOpen []bool) int {
	n := 0
	for _, o := range isOpen {
		if o {
			n++
		}
	}
	return n
}

func pinnedCount(pins []int) int {
	n := 0
	for _, p := range pins {
		n += p
	}
	return n
}

// TestConcurrentAcquire: tasks of a simulated world acquire the same closed
// handles while opens take virtual time, so two opens of one handle and a
// Remove during an open interleave. Both acquirers share one file, the
// surplus is closed, and at the end exactly the idle files within the
// limit are open and the counters agree with them.
func TestConcurrentAcquire(t *testing.T) {
	surplus := 0 // opens that lost the race to another task's open of the handle
	for seed := uint64(1); seed <= 20; seed++ {
		w := sim.New(sim.Options{Seed: seed, MaxVirtualTime: time.Hour})
		err := w.Run(func(w *sim.World) error {
			rng := w.NewRand("test")
			fs := newFiles()
			fs.before = func() { w.Sleep(time.Duration(1+rng.IntN(3)) * time.Millisecond) }
			c, err := New(Config{MaxOpenFiles: 2})
			if err != nil {
				return err
			}
			hs := make([]*Handle, 4)
			for i := range hs {
				hs[i] = c.Add(fs.opener(i))
			}
			wg := clock.NewWaitGroup(w.Clock())
			var failure error
			peak := 0
			for task := 0; task < 4; task++ {
				wg.Add(1)
				w.Go(fmt.Sprintf("reader-%d", task), func(context.Context) {
					defer wg.Done()
					for range 30 {
						i := rng.IntN(len(hs))
						f, err := hs[i].Acquire()
						if errors.Is(err, ErrRemoved) && i == 3 {
							continue
						}
						if err != nil {
							failure = err
							return
						}
						peak = max(peak, fs.total())
						w.Sleep(time.Duration(rng.IntN(2)) * time.Millisecond)
						if f.(*fakeFile).closed {
							failure = fmt.Errorf("handle %d: file closed while pinned", i)
						}
						hs[i].Release()
					}
				})
			}
			wg.Add(1)
			w.Go("remover", func(context.Context) {
				defer wg.Done()
				w.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
				if err := hs[3].Remove(); err != nil {
					failure = err
				}
			})
			if err := wg.Wait(context.Background()); err != nil {
				return err
			}
			if failure != nil {
				return failure
			}
			st := c.Stats()
			// Each of the 4 readers pins or opens one file at a time: the
			// limit of 2 bends only that far.
			if peak > 4 {
				return fmt.Errorf("%d files open at once", peak)
			}
			if st.Open != fs.total() || st.Open > 2 || st.Pinned != 0 || fs.open[3] != 0 {
				return fmt.Errorf("after the run: stats %+v, open files %v", st, fs.open)
			}
			for _, h := range hs[:3] {
				if err := h.Remove(); err != nil {
					return err
				}
			}
			if st := c.Stats(); st.Open != 0 || fs.total() != 0 || st.Handles != 0 {
				return fmt.Errorf("after removing every handle: stats %+v, open files %v", st, fs.open)
			}
			surplus += len(fs.opens) - int(st.Opens+st.Reopens)
			return nil
		})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	if surplus == 0 {
		t.Fatal("no two tasks ever opened one handle at once: the race this test is for never ran")
	}
	t.Logf("%d surplus opens", surplus)
}

// TestCloseIfIdle: a pinned handle or one being opened is never closed;
// an idle open one is closed (and counted closed), a closed one reports
// closed, a removed one does not; the next Acquire opens it again.
func TestCloseIfIdle(t *testing.T) {
	fs := newFiles()
	c := newCache(t, 4)
	h := c.Add(fs.opener(0))
	if !h.CloseIfIdle() {
		t.Fatal("a never opened handle is idle")
	}
	if _, err := h.Acquire(); err != nil {
		t.Fatal(err)
	}
	if h.CloseIfIdle() {
		t.Fatal("closed a pinned handle")
	}
	if fs.open[0] != 1 {
		t.Fatalf("pinned file closed: %v", fs.open)
	}
	h.Release()
	if !h.CloseIfIdle() || fs.open[0] != 0 || c.Stats().Open != 0 {
		t.Fatalf("idle handle not closed: open %v, stats %+v", fs.open, c.Stats())
	}
	use(t, h)
	if st := c.Stats(); st.Reopens != 1 || fs.open[0] != 1 {
		t.Fatalf("after CloseIfIdle the next Acquire reopens: stats %+v", st)
	}
	// An Acquire opening the handle: CloseIfIdle refuses until it is done.
	var during bool
	var h2 *Handle
	h2 = c.Add(func() (io.Closer, error) {
		during = h2.CloseIfIdle()
		return fs.opener(1)()
	})
	if _, err := h2.Acquire(); err != nil {
		t.Fatal(err)
	}
	if during {
		t.Fatal("CloseIfIdle closed a handle while it was being opened")
	}
	h2.Release()
	if err := h.Remove(); err != nil {
		t.Fatal(err)
	}
	if h.CloseIfIdle() {
		t.Fatal("a removed handle reports closed and unused")
	}
}

// TestLastUse: the last Acquire orders handles across the cache.
func TestLastUse(t *testing.T) {
	fs := newFiles()
	c := newCache(t, 1)
	a, b := c.Add(fs.opener(0)), c.Add(fs.opener(1))
	if a.LastUse() != 0 {
		t.Fatal("never acquired, yet used")
	}
	use(t, a)
	use(t, b)
	if !(a.LastUse() < b.LastUse()) {
		t.Fatalf("a %d, b %d: b was used last", a.LastUse(), b.LastUse())
	}
	use(t, a) // reopened (the limit of 1 closed it): still a use
	if !(b.LastUse() < a.LastUse()) {
		t.Fatalf("a %d, b %d: a was used last", a.LastUse(), b.LastUse())
	}
}
