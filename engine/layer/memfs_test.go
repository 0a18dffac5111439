package layer

import (
	"io"
	"io/fs"
	"sync"

	"github.com/stratadb/strata/disk"
)

// memFS is a minimal in-memory disk.FS for tests and fuzzing: files only,
// directories implicit, no crash model (the layer code's durability calls
// are exercised against the OS implementation in file_test.go).
type memFS struct {
	mu    sync.Mutex
	files map[string]*memData
}

type memData struct{ b []byte }

func newMemFS() *memFS { return &memFS{files: map[string]*memData{}} }

func (m *memFS) get(name string) (*memData, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return d, nil
}

func (m *memFS) Create(name string) (disk.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := &memData{}
	m.files[name] = d
	return &memFile{fs: m, name: name, d: d}, nil
}
func (m *memFS) Open(name string) (disk.File, error) {
	d, err := m.get(name)
	if err != nil {
		return nil, err
	}
	return &memFile{fs: m, name: name, d: d}, nil
}
func (m *memFS) OpenRW(name string) (disk.File, error) { return m.Open(name) }
func (m *memFS) Rename(o, n string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.files[o]
	if !ok {
		return fs.ErrNotExist
	}
	delete(m.files, o)
	m.files[n] = d
	return nil
}
func (m *memFS) Link(o, n string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[n] = m.files[o]
	return nil
}
func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, name)
	return nil
}
func (m *memFS) RemoveAll(name string) error           { return m.Remove(name) }
func (m *memFS) MkdirAll(string) error                 { return nil }
func (m *memFS) ReadDir(string) ([]fs.DirEntry, error) { return nil, fs.ErrInvalid }
func (m *memFS) Stat(string) (fs.FileInfo, error)      { return nil, fs.ErrInvalid }
func (m *memFS) SyncDir(string) error                  { return nil }
func (m *memFS) FreeSpace() (uint64, error)            { return 1 << 40, nil }

// put stores b as name (a test shortcut around Create/Write).
func (m *memFS) put(name string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = &memData{b: append([]byte(nil), b...)}
}

// bytes returns a copy of name's content.
func (m *memFS) bytes(name string) []byte {
	d, err := m.get(name)
	if err != nil {
		return nil
	}
	return append([]byte(nil), d.b...)
}

type memFile struct {
	fs   *memFS
	name string
	d    *memData
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off < 0 || off >= int64(len(f.d.b)) {
		return 0, io.EOF
	}
	n := copy(p, f.d.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if need := int(off) + len(p); need > len(f.d.b) {
		f.d.b = append(f.d.b, make([]byte, need-len(f.d.b))...)
	}
	copy(f.d.b[off:], p)
	return len(p), nil
}
func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.d.b = append(f.d.b, p...)
	return len(p), nil
}
func (f *memFile) Close() error { return nil }
func (f *memFile) Sync() error  { return nil }
func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.d.b = f.d.b[:size]
	return nil
}
func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return int64(len(f.d.b)), nil
}
func (f *memFile) Name() string { return f.name }
