package simdisk_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sort"
	"testing"

	"pgregory.net/rapid"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/sim/simdisk"
)

// modelFile is a file in the crash-contract model: what reads see and what
// a crash keeps.
type modelFile struct {
	cur, dur []byte
}

type modelHandle struct {
	f    disk.File
	file *modelFile
}

// crashModel is the crash contract of package disk for one flat directory,
// written as plainly as possible: entries and file data each have a current
// and a durable version; Sync and SyncDir copy current to durable; a crash
// (without tearing) copies durable to current and kills every handle.
type crashModel struct {
	d       *simdisk.FS
	cur     map[string]*modelFile
	dur     map[string]*modelFile
	handles []modelHandle
	dead    []disk.File
}

var modelNames = []string{"a", "b", "c"}

func cloneMap(m map[string]*modelFile) map[string]*modelFile {
	c := make(map[string]*modelFile, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (m *crashModel) handle(t *rapid.T) modelHandle {
	if len(m.handles) == 0 {
		t.Skip("no open handle")
	}
	return m.handles[rapid.IntRange(0, len(m.handles)-1).Draw(t, "handle")]
}

func (m *crashModel) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"create": func(t *rapid.T) {
			name := rapid.SampledFrom(modelNames).Draw(t, "name")
			f, err := m.d.Create(name)
			if err != nil {
				t.Fatalf("Create(%s): %v", name, err)
			}
			mf, ok := m.cur[name]
			if ok {
				mf.cur = mf.cur[:0:0]
			} else {
				mf = &modelFile{}
				m.cur[name] = mf
			}
			m.handles = append(m.handles, modelHandle{f, mf})
		},
		"open": func(t *rapid.T) {
			name := rapid.SampledFrom(modelNames).Draw(t, "name")
			f, err := m.d.OpenRW(name)
			mf, ok := m.cur[name]
			if !ok {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("OpenRW(%s) of missing file: %v", name, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenRW(%s): %v", name, err)
			}
			m.handles = append(m.handles, modelHandle{f, mf})
		},
		"write": func(t *rapid.T) {
			h := m.handle(t)
			data := rapid.SliceOfN(rapid.Byte(), 1, 700).Draw(t, "data")
			if _, err := h.f.Write(data); err != nil {
				t.Fatal(err)
			}
			h.file.cur = append(h.file.cur, data...)
		},
		"writeAt": func(t *rapid.T) {
			h := m.handle(t)
			off := rapid.IntRange(0, 1500).Draw(t, "off")
			data := rapid.SliceOfN(rapid.Byte(), 1, 700).Draw(t, "data")
			if _, err := h.f.WriteAt(data, int64(off)); err != nil {
				t.Fatal(err)
			}
			if end := off + len(data); end > len(h.file.cur) {
				h.file.cur = append(h.file.cur, make([]byte, end-len(h.file.cur))...)
			}
			copy(h.file.cur[off:], data)
		},
		"truncate": func(t *rapid.T) {
			h := m.handle(t)
			size := rapid.IntRange(0, 1500).Draw(t, "size")
			if err := h.f.Truncate(int64(size)); err != nil {
				t.Fatal(err)
			}
			if size <= len(h.file.cur) {
				h.file.cur = h.file.cur[:size:size]
			} else {
				h.file.cur = append(h.file.cur, make([]byte, size-len(h.file.cur))...)
			}
		},
		"sync": func(t *rapid.T) {
			h := m.handle(t)
			if err := h.f.Sync(); err != nil {
				t.Fatal(err)
			}
			h.file.dur = append([]byte(nil), h.file.cur...)
		},
		"close": func(t *rapid.T) {
			if len(m.handles) == 0 {
				t.Skip("no open handle")
			}
			i := rapid.IntRange(0, len(m.handles)-1).Draw(t, "handle")
			if err := m.handles[i].f.Close(); err != nil {
				t.Fatal(err)
			}
			m.handles = append(m.handles[:i], m.handles[i+1:]...)
		},
		"syncDir": func(t *rapid.T) {
			if err := m.d.SyncDir("."); err != nil {
				t.Fatal(err)
			}
			m.dur = cloneMap(m.cur)
		},
		"rename": func(t *rapid.T) {
			from := rapid.SampledFrom(modelNames).Draw(t, "from")
			to := rapid.SampledFrom(modelNames).Draw(t, "to")
			err := m.d.Rename(from, to)
			mf, ok := m.cur[from]
			if !ok {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Rename of missing %s: %v", from, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Rename(%s, %s): %v", from, to, err)
			}
			if m.cur[to] == mf {
				return // same file under both names: no-op
			}
			delete(m.cur, from)
			m.cur[to] = mf
		},
		"link": func(t *rapid.T) {
			from := rapid.SampledFrom(modelNames).Draw(t, "from")
			to := rapid.SampledFrom(modelNames).Draw(t, "to")
			err := m.d.Link(from, to)
			mf, ok := m.cur[from]
			_, exists := m.cur[to]
			switch {
			case !ok:
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Link of missing %s: %v", from, err)
				}
			case exists:
				if !errors.Is(err, fs.ErrExist) {
					t.Fatalf("Link onto existing %s: %v", to, err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				m.cur[to] = mf
			}
		},
		"remove": func(t *rapid.T) {
			name := rapid.SampledFrom(modelNames).Draw(t, "name")
			err := m.d.Remove(name)
			if _, ok := m.cur[name]; !ok {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Remove of missing %s: %v", name, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			delete(m.cur, name)
		},
		"crash": func(t *rapid.T) {
			seed := rapid.Uint64().Draw(t, "seed")
			m.d.Crash(rand.New(rand.NewPCG(seed, 0)), false)
			for _, h := range m.handles {
				m.dead = append(m.dead, h.f)
			}
			m.handles = nil
			m.cur = cloneMap(m.dur)
			for _, mf := range m.cur {
				mf.cur = append([]byte(nil), mf.dur...)
			}
		},
		"crashTorn": func(t *rapid.T) {
			seed := rapid.Uint64().Draw(t, "seed")
			m.d.Crash(rand.New(rand.NewPCG(seed, 0)), true)
			for _, h := range m.handles {
				m.dead = append(m.dead, h.f)
			}
			m.handles = nil
			m.adoptTorn(t)
		},
		"deadHandle": func(t *rapid.T) {
			if len(m.dead) == 0 {
				t.Skip("no dead handle")
			}
			f := m.dead[rapid.IntRange(0, len(m.dead)-1).Draw(t, "dead")]
			if _, err := f.Write([]byte("zombie")); !errors.Is(err, disk.ErrCrashed) {
				t.Fatalf("write through a pre-crash handle: %v", err)
			}
		},
		"": func(t *rapid.T) { m.check(t) },
	}
}

// adoptTorn checks the state a torn crash left against the contract and
// makes it the model's new state: the directory holds all its durable or
// all its current entries; each surviving file's bytes are durable bytes
// except where an unsynced write changed them, sector by sector, and an
// unsynced extension survives as a prefix.
func (m *crashModel) adoptTorn(t *rapid.T) {
	ents, err := m.d.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	// The durable and current sets may name the same files differently (a
	// name removed and created again), so accept whichever explains what
	// survived.
	var firstErr string
	for _, kept := range []map[string]*modelFile{m.dur, m.cur} {
		if !sameNames(kept, names) {
			firstErr = fmt.Sprintf("names %q are neither the durable nor the current set", names)
			continue
		}
		if msg := m.sameLinks(kept, names); msg != "" {
			firstErr = msg
			continue
		}
		contents, msg := m.tornContents(kept, names)
		if msg != "" {
			firstErr = msg
			continue
		}
		m.cur = cloneMap(kept)
		m.dur = cloneMap(kept)
		for mf, got := range contents {
			mf.cur = append([]byte(nil), got...)
			mf.dur = append([]byte(nil), got...)
		}
		return
	}
	t.Fatalf("after torn crash: %s", firstErr)
}

func sameNames(mm map[string]*modelFile, names []string) bool {
	if len(mm) != len(names) {
		return false
	}
	for _, n := range names {
		if _, ok := mm[n]; !ok {
			return false
		}
	}
	return true
}

// sameLinks checks that names are hard links of one another exactly where
// kept says so.
func (m *crashModel) sameLinks(kept map[string]*modelFile, names []string) string {
	for i, a := range names {
		for _, b := range names[i+1:] {
			same, err := m.d.SameFile(a, b)
			if err != nil {
				return err.Error()
			}
			if same != (kept[a] == kept[b]) {
				return fmt.Sprintf("%s and %s: same file %v, model says %v", a, b, same, kept[a] == kept[b])
			}
		}
	}
	return ""
}

// tornContents reads every surviving file and checks it against the model
// files kept names, returning a violation message if any.
func (m *crashModel) tornContents(kept map[string]*modelFile, names []string) (map[*modelFile][]byte, string) {
	out := map[*modelFile][]byte{}
	for _, n := range names {
		mf := kept[n]
		got, err := disk.ReadFile(m.d, n)
		if err != nil {
			return nil, err.Error()
		}
		if prev, ok := out[mf]; ok {
			if string(prev) != string(got) {
				return nil, n + ": hard links differ"
			}
			continue
		}
		if msg := checkTorn(n, mf.dur, mf.cur, got); msg != "" {
			return nil, msg
		}
		out[mf] = got
	}
	return out, ""
}

func checkTorn(name string, dur, cur, got []byte) string {
	lo := len(dur)
	hi := max(len(dur), len(cur))
	if len(got) < lo || len(got) > hi {
		return fmt.Sprintf("%s: torn size %d outside [%d, %d]", name, len(got), lo, hi)
	}
	common := min(len(dur), len(cur))
	for s := 0; s < common; s += simdisk.SectorSize {
		e := min(s+simdisk.SectorSize, common)
		if string(got[s:e]) != string(dur[s:e]) && string(got[s:e]) != string(cur[s:e]) {
			return fmt.Sprintf("%s: sector at %d is neither durable nor current", name, s)
		}
	}
	for i := common; i < len(got); i++ {
		switch {
		case i < len(dur) && got[i] != dur[i]:
			return fmt.Sprintf("%s: byte %d beyond the current size changed", name, i)
		case i >= len(dur) && got[i] != cur[i]:
			return fmt.Sprintf("%s: byte %d of the extension is not the written one", name, i)
		}
	}
	return ""
}

// check compares every name and byte the FS shows with the model.
func (m *crashModel) check(t *rapid.T) {
	ents, err := m.d.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	for n := range m.cur {
		want = append(want, n)
	}
	sort.Strings(want)
	if len(got) != len(want) {
		t.Fatalf("names %q, model %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("names %q, model %q", got, want)
		}
	}
	for _, n := range want {
		data, err := disk.ReadFile(m.d, n)
		if err != nil {
			t.Fatalf("read %s: %v", n, err)
		}
		if string(data) != string(m.cur[n].cur) {
			t.Fatalf("%s holds %d bytes, model %d (or content differs)", n, len(data), len(m.cur[n].cur))
		}
	}
}

func TestCrashContractModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := &crashModel{
			d:   simdisk.New(simdisk.Options{}),
			cur: map[string]*modelFile{},
			dur: map[string]*modelFile{},
		}
		t.Repeat(m.actions())
	})
}
