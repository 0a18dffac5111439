package simdisk

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stratadb/strata/disk"
)

// SectorSize is the granularity at which unsynced writes tear.
const SectorSize = 512

// MaxFileBytes bounds a file's size: the FS holds files in memory, so a
// write at a wild offset fails (fs.ErrInvalid, like EFBIG) instead of
// exhausting the simulator's memory.
const MaxFileBytes = 1 << 32

// unlimitedFreeBytes is what FreeSpace reports when no capacity is set.
const unlimitedFreeBytes = 1 << 50

// Options configures an FS.
type Options struct {
	// CapacityBytes limits the total size of all live files; a write that
	// would exceed it fails with disk.ErrNoSpace. 0 means unlimited.
	CapacityBytes int64
	// Latency, if set together with Sleep, gives the simulated duration of
	// an operation ("read", "write", "sync", "syncdir", "create", "open",
	// "rename", "link", "remove", "mkdir", "readdir", "stat", "truncate").
	// Sleep is called with it before the operation, outside any lock; the
	// simulator wires Sleep to its virtual clock.
	Latency func(op string) time.Duration
	Sleep   func(d time.Duration)
}

// Faults are per-operation fault probabilities in [0, 1]. All zero means no
// faults (and no random draws).
type Faults struct {
	// ReadEIO fails a ReadAt with disk.ErrIO.
	ReadEIO float64
	// WriteEIO fails a Write, WriteAt or Truncate with disk.ErrIO; the write
	// may or may not have been applied (unsynced either way).
	WriteEIO float64
	// SyncEIO fails a Sync or SyncDir with disk.ErrIO. A failed Sync drops
	// the file's unsynced writes (current content reverts to durable), as
	// Linux may after writeback errors.
	SyncEIO float64
	// NoSpace fails a Create, Write, WriteAt or growing Truncate with
	// disk.ErrNoSpace, without effect.
	NoSpace float64
}

// FS is an in-memory disk.FS with crash simulation and fault injection.
type FS struct {
	opts Options

	mu          sync.Mutex
	root        *inode
	nextID      uint64
	incarnation uint64
	usedBytes   int64
	faults      Faults
	faultRand   *rand.Rand
}

var _ disk.FS = (*FS)(nil)

type inode struct {
	id  uint64
	dir bool

	// Files.
	data    []byte // current content
	durable []byte // content that survives a crash
	// dirtyLo, dirtyHi bound the bytes of data that may differ from durable
	// within their common length (empty when dirtyLo >= dirtyHi).
	dirtyLo, dirtyHi int64
	open             int // open handles of the current incarnation

	// Directories.
	entries        map[string]*inode
	durableEntries map[string]*inode
	entriesDirty   bool

	nlink int // current directory entries naming this inode
}

// New returns an empty FS.
func New(opts Options) *FS {
	f := &FS{opts: opts}
	f.root = f.newInode(true)
	f.root.nlink = 1
	return f
}

func (f *FS) newInode(dir bool) *inode {
	f.nextID++
	ino := &inode{id: f.nextID, dir: dir}
	if dir {
		ino.entries = map[string]*inode{}
		ino.durableEntries = map[string]*inode{}
	}
	return ino
}

// SetFaults sets the fault probabilities; rng drives every fault decision.
func (f *FS) SetFaults(rng *rand.Rand, faults Faults) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = faults
	f.faultRand = rng
}

// fault draws against probability p. Called with f.mu held.
func (f *FS) fault(p float64) bool {
	if p <= 0 || f.faultRand == nil {
		return false
	}
	return f.faultRand.Float64() < p
}

func (f *FS) delay(op string) {
	if f.opts.Latency == nil || f.opts.Sleep == nil {
		return
	}
	if d := f.opts.Latency(op); d > 0 {
		f.opts.Sleep(d)
	}
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: "simdisk " + op, Path: name, Err: err}
}

var (
	errNotDir = fmt.Errorf("not a directory: %w", fs.ErrInvalid)
	errIsDir  = fmt.Errorf("is a directory: %w", fs.ErrInvalid)
)

// lookupDir resolves a directory name. Called with f.mu held.
func (f *FS) lookupDir(op, name string) (*inode, error) {
	ino, err := f.lookup(op, name)
	if err != nil {
		return nil, err
	}
	if !ino.dir {
		return nil, pathErr(op, name, errNotDir)
	}
	return ino, nil
}

// lookup resolves a checked name. Called with f.mu held.
func (f *FS) lookup(op, name string) (*inode, error) {
	cur := f.root
	if name == "." {
		return cur, nil
	}
	for _, part := range strings.Split(name, "/") {
		if !cur.dir {
			return nil, pathErr(op, name, errNotDir)
		}
		next, ok := cur.entries[part]
		if !ok {
			return nil, pathErr(op, name, fs.ErrNotExist)
		}
		cur = next
	}
	return cur, nil
}

// parent resolves the directory holding a checked name other than ".".
func (f *FS) parent(op, name string) (*inode, string, error) {
	if name == "." {
		return nil, "", pathErr(op, name, fmt.Errorf("the root has no parent: %w", fs.ErrInvalid))
	}
	dir, err := f.lookupDir(op, path.Dir(name))
	if err != nil {
		return nil, "", err
	}
	return dir, path.Base(name), nil
}

func (f *FS) link(dir *inode, base string, ino *inode) {
	dir.entries[base] = ino
	dir.entriesDirty = true
	ino.nlink++
}

// unlink removes dir's entry base and, for a directory, every entry below
// it, releasing space of files that become unreachable and unopened.
func (f *FS) unlink(dir *inode, base string) {
	ino := dir.entries[base]
	delete(dir.entries, base)
	dir.entriesDirty = true
	f.drop(ino)
}

func (f *FS) drop(ino *inode) {
	ino.nlink--
	if ino.nlink > 0 {
		return
	}
	if ino.dir {
		for _, name := range sortedNames(ino.entries) {
			f.unlink(ino, name)
		}
		return
	}
	if ino.open == 0 {
		f.usedBytes -= int64(len(ino.data))
	}
}

func sortedNames(m map[string]*inode) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (f *FS) openFile(inc uint64, op, name string, create, truncate, writable bool) (disk.File, error) {
	if err := disk.CheckName(op, name); err != nil {
		return nil, err
	}
	f.delay(op)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkIncarnation(inc, op, name); err != nil {
		return nil, err
	}
	if name == "." {
		return nil, pathErr(op, name, errIsDir)
	}
	dir, base, err := f.parent(op, name)
	if err != nil {
		return nil, err
	}
	ino, ok := dir.entries[base]
	switch {
	case ok && ino.dir:
		return nil, pathErr(op, name, errIsDir)
	case !ok && !create:
		return nil, pathErr(op, name, fs.ErrNotExist)
	case !ok:
		if f.fault(f.faults.NoSpace) {
			return nil, pathErr(op, name, disk.ErrNoSpace)
		}
		ino = f.newInode(false)
		f.link(dir, base, ino)
	case truncate:
		if f.fault(f.faults.NoSpace) {
			return nil, pathErr(op, name, disk.ErrNoSpace)
		}
		f.resize(ino, 0)
	}
	ino.open++
	return &file{fs: f, ino: ino, name: name, writable: writable, incarnation: f.incarnation}, nil
}

// rename implements Rename with POSIX rename semantics.
func (f *FS) rename(inc uint64, oldname, newname string) error {
	if err := disk.CheckName("rename", oldname); err != nil {
		return err
	}
	if err := disk.CheckName("rename", newname); err != nil {
		return err
	}
	f.delay("rename")
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkIncarnation(inc, "rename", oldname); err != nil {
		return err
	}
	odir, obase, err := f.parent("rename", oldname)
	if err != nil {
		return err
	}
	ino, ok := odir.entries[obase]
	if !ok {
		return pathErr("rename", oldname, fs.ErrNotExist)
	}
	ndir, nbase, err := f.parent("rename", newname)
	if err != nil {
		return err
	}
	if ino.dir && strings.HasPrefix(newname, oldname+"/") {
		return pathErr("rename", newname, fmt.Errorf("cannot move a directory below itself: %w", fs.ErrInvalid))
	}
	if target, ok := ndir.entries[nbase]; ok {
		if target == ino {
			return nil // same file: POSIX says do nothing
		}
		switch {
		case ino.dir && !target.dir:
			return pathErr("rename", newname, errNotDir)
		case !ino.dir && target.dir:
			return pathErr("rename", newname, errIsDir)
		case target.dir && len(target.entries) > 0:
			return pathErr("rename", newname, fmt.Errorf("directory not empty: %w", fs.ErrExist))
		}
		f.unlink(ndir, nbase)
	}
	// Link first so the inode never looks unreachable in between.
	f.link(ndir, nbase, ino)
	f.unlink(odir, obase)
	return nil
}

// linkName implements Link.
func (f *FS) linkName(inc uint64, oldname, newname string) error {
	if err := disk.CheckName("link", oldname); err != nil {
		return err
	}
	if err := disk.CheckName("link", newname); err != nil {
		return err
	}
	f.delay("link")
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkIncarnation(inc, "link", newname); err != nil {
		return err
	}
	ino, err := f.lookup("link", oldname)
	if err != nil {
		return err
	}
	if ino.dir {
		return pathErr("link", oldname, errIsDir)
	}
	ndir, nbase, err := f.parent("link", newname)
	if err != nil {
		return err
	}
	if _, ok := ndir.entries[nbase]; ok {
		return pathErr("link", newname, fs.ErrExist)
	}
	f.link(ndir, nbase, ino)
	return nil
}

// remove implements Remove.
func (f *FS) remove(inc uint64, name string) error {
	if err := disk.CheckName("remove", name); err != nil {
		return err
	}
	f.delay("remove")
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkIncarnation(inc, "remove", name); err != nil {
		return err
	}
	dir, base, err := f.parent("remove", name)
	if err != nil {
		return err
	}
	ino, ok := dir.entries[base]
	if !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	if ino.dir && len(ino.entries) > 0 {
		return pathErr("remove", name, fmt.Errorf("directory not empty: %w", fs.ErrExist))
	}
	f.unlink(dir, base)
	return nil
}

// removeAll implements RemoveAll.
func (f *FS) removeAll(inc uint64, name string) error {
	if err := disk.CheckName("removeall", name); err != nil {
		return err
	}
	f.delay("remove")
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkIncarnation(inc, "removeall", name); err != nil {
		return err
	}
	dir, base, err := f.parent("removeall", name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if _, ok := dir.entries[base]; !ok {
		return nil
	}
	f.unlink(dir, base)
	return nil
}

// mkdirAll implements MkdirAll. New directories are durable only once their
// parents are synced (see disk.MkdirAllDurable).
func (f *FS) mkdirAll(inc uint64, name string) error {
	if err := disk.CheckName("mkdirall", name); err != nil {
		return err
	}
	f.delay("mkdir")
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkIncarnation(inc, "mkdirall", name); err != nil {
		return err
	}
	if name == "." {
		return nil
	}
	cur := f.root
	for _, part := range strings.Split(name, "/") {
		next, ok := cur.entries[part]
		switch {
		case !ok:
			next = f.newInode(true)
			f.link(cur, part, next)
		case !next.dir:
			return pathErr("mkdirall", name, errNotDir)
		}
		cur = next
	}
	return nil
}

// readDir implements ReadDir.
func (f *FS) readDir(inc uint64, name string) ([]fs.DirEntry, error) {
	if err := disk.CheckName("readdir", name); err != nil {
		return nil, err
	}
	f.delay("readdir")
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkIncarnation(inc, "readdir", name); err != nil {
		return nil, err
	}
	dir, err := f.lookupDir("readdir", name)
	if err != nil {
		return nil, err
	}
	names := sortedNames(dir.entries)
	ents := make([]fs.DirEntry, len(names))
	for i, n := range names {
		ents[i] = fs.FileInfoToDirEntry(infoOf(n, dir.entries[n]))
	}
	return ents, nil
}

// stat implements Stat.
func (f *FS) stat(inc uint64, name string) (fs.FileInfo, error) {
	if err := disk.CheckName("stat", name); err != nil {
		return nil, err
	}
	f.delay("stat")
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkIncarnation(inc, "stat", name); err != nil {
		return nil, err
	}
	ino, err := f.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return infoOf(path.Base(name), ino), nil
}

// syncDir implements SyncDir.
func (f *FS) syncDir(inc uint64, name string) error {
	if err := disk.CheckName("syncdir", name); err != nil {
		return err
	}
	f.delay("syncdir")
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkIncarnation(inc, "syncdir", name); err != nil {
		return err
	}
	dir, err := f.lookupDir("syncdir", name)
	if err != nil {
		return err
	}
	if f.fault(f.faults.SyncEIO) {
		return pathErr("syncdir", name, disk.ErrIO)
	}
	dir.durableEntries = cloneEntries(dir.entries)
	dir.entriesDirty = false
	return nil
}

func cloneEntries(m map[string]*inode) map[string]*inode {
	c := make(map[string]*inode, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// freeSpace implements FreeSpace.
func (f *FS) freeSpace(inc uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkIncarnation(inc, "freespace", "."); err != nil {
		return 0, err
	}
	if f.opts.CapacityBytes <= 0 {
		return unlimitedFreeBytes, nil
	}
	if f.usedBytes >= f.opts.CapacityBytes {
		return 0, nil
	}
	return uint64(f.opts.CapacityBytes - f.usedBytes), nil
}

// UsedBytes reports the total current size of all live files.
func (f *FS) UsedBytes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.usedBytes
}

// Corrupt flips the bits of one byte of name's durable content at offset, as
// a latent media error would, so that checksums must catch it. If the
// current content still equals the durable byte there, reads see the flip
// at once; otherwise it shows after the next crash (unless overwritten and
// synced first).
func (f *FS) Corrupt(name string, offset int64) error {
	if err := disk.CheckName("corrupt", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, err := f.lookup("corrupt", name)
	if err != nil {
		return err
	}
	if ino.dir {
		return pathErr("corrupt", name, errIsDir)
	}
	if offset < 0 || offset >= int64(len(ino.durable)) {
		return pathErr("corrupt", name, fmt.Errorf("offset %d outside durable size %d: %w", offset, len(ino.durable), fs.ErrInvalid))
	}
	old := ino.durable[offset]
	ino.durable[offset] ^= 0xff
	if offset < int64(len(ino.data)) && ino.data[offset] == old {
		ino.data[offset] ^= 0xff
	}
	return nil
}

type fileInfo struct {
	name string
	size int64
	dir  bool
}

func infoOf(name string, ino *inode) fileInfo {
	return fileInfo{name: name, size: int64(len(ino.data)), dir: ino.dir}
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return i.size }
func (i fileInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return i.dir }
func (i fileInfo) Sys() any           { return nil }

// SameFile reports whether names a and b are links to the same file (as
// os.SameFile does for the OS), for tests that track hard links.
func (f *FS) SameFile(a, b string) (bool, error) {
	if err := disk.CheckName("samefile", a); err != nil {
		return false, err
	}
	if err := disk.CheckName("samefile", b); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ia, err := f.lookup("samefile", a)
	if err != nil {
		return false, err
	}
	ib, err := f.lookup("samefile", b)
	if err != nil {
		return false, err
	}
	return ia == ib, nil
}
