package objstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratadb/strata/disk"
)

// LocalOptions configures a Local store.
type LocalOptions struct {
	// Now stamps each object's LastModified. Default: the zero time, so the
	// store never reads a clock unless given one (use a clock.Clock's Now).
	Now func() time.Time
	// InstanceID distinguishes the temporary files of Local instances that
	// share one directory concurrently; give each such instance its own.
	// Default "0".
	InstanceID string
}

// Local is a Store kept as files on a disk.FS below a root directory, so it
// runs on the real disk (disk.Dir) and on the simulator's disk alike.
//
// Every write is whole and durable before it returns: data goes to a temp
// file that is synced, then renamed (or, for IfNoneMatch, hard-linked) over
// the object's name, and the directory is synced. A reader therefore sees
// the old object or the new one, never part of one, even across crashes.
//
// IfNoneMatch is atomic on the file system itself: the final name is made
// with Link, which fails if the name exists, so two conditional puts of one
// key (from any number of goroutines, or processes sharing the directory)
// cannot both succeed. Delete removes directories it empties; a Put racing
// with that retries its directory creation a bounded number of times.
//
// Temp files left by a crash mid-Put are ignored by List; SweepTemp removes
// an instance's own leftovers (call it at start, before the first Put).
// Another instance's temp files are never removed: they may be in flight.
//
// Nothing is reported that a crash could undo. A Put or Delete whose
// directory sync failed leaves its change visible but not durable (the
// caller got an error, but a retry, a reader, or the next process on the
// same disk sees the change). So every answer that rests on a directory's
// entries (an object found or not found, a listing, the name a conditional
// Put found taken, a key a Delete found already gone) is given only after
// that directory was synced, unless this instance synced it before the
// look and changed nothing in it since; the next instance therefore syncs
// each directory once, when it first reads it. A directory's ancestors need
// no such care: Put makes them durable before it puts anything below them.
type Local struct {
	fs      disk.FS
	root    string
	now     func() time.Time
	tmpBase string
	tmpSeq  atomic.Uint64

	mu sync.Mutex
	// dirs tracks, per directory, the entry changes this instance makes
	// and whether it synced the directory since. Its size is bounded by
	// the directories that exist: a pruned or missing one is forgotten.
	dirs   map[string]dirState
	dirSeq uint64 // source of epochs, unique across directories
}

// dirState is what Local knows of one directory's durability.
type dirState struct {
	// epoch changes before and after every entry change this instance
	// makes in the directory, so a sync that overlapped a change does not
	// count for it.
	epoch uint64
	// synced: SyncDir succeeded, started at epoch.
	synced bool
}

var _ Store = (*Local)(nil)

// localMagic starts every object file; the header then holds LastModified.
const (
	localMagic      = "SOB1"
	localHeaderSize = 4 + 8
	// maxPutDirAttempts bounds a Put's retries when a concurrent Delete
	// removes the directory it is writing into.
	maxPutDirAttempts = 4
)

// NewLocal returns a Local store rooted at root ("." for the FS root),
// creating root durably if needed.
func NewLocal(fsys disk.FS, root string, opts LocalOptions) (*Local, error) {
	if err := disk.CheckName("objstore", root); err != nil {
		return nil, fmt.Errorf("objstore: local root: %w: %w", ErrPermanent, err)
	}
	if err := disk.MkdirAllDurable(fsys, root); err != nil {
		return nil, diskErr("create root", root, err)
	}
	now := opts.Now
	if now == nil {
		now = func() time.Time { return time.Time{} }
	}
	id := opts.InstanceID
	if id == "" {
		id = "0"
	}
	return &Local{fs: fsys, root: root, now: now, tmpBase: string(tagTemp) + escSegment(id) + "-", dirs: map[string]dirState{}}, nil
}

// changing records an entry change in dir; call it right before and right
// after the change.
func (l *Local) changing(dir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dirSeq++
	l.dirs[dir] = dirState{epoch: l.dirSeq}
}

// knownSynced returns dir's epoch if this instance synced dir at it, else 0.
func (l *Local) knownSynced(dir string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.dirs[dir]; st.synced {
		return st.epoch
	}
	return 0
}

// stillSynced reports whether dir is synced at epoch and unchanged since.
func (l *Local) stillSynced(dir string, epoch uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.dirs[dir]
	return epoch != 0 && st.synced && st.epoch == epoch
}

// syncDir syncs dir and records it as synced, unless an entry change in it
// overlapped the sync. A missing directory is forgotten.
func (l *Local) syncDir(dir string) error {
	l.mu.Lock()
	st, ok := l.dirs[dir]
	if !ok {
		l.dirSeq++
		st = dirState{epoch: l.dirSeq}
		l.dirs[dir] = st
	}
	l.mu.Unlock()
	err := l.fs.SyncDir(dir)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		if cur := l.dirs[dir]; cur.epoch == st.epoch {
			l.dirs[dir] = dirState{epoch: st.epoch, synced: true}
		}
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid):
		if cur := l.dirs[dir]; cur.epoch == st.epoch {
			delete(l.dirs, dir)
		}
	}
	return err
}

// confirm makes what a look at dir's entries saw durable: it syncs dir
// unless dir was known synced (epoch, from knownSynced before the look)
// and unchanged since. A missing directory needs nothing: everything below
// it is absent either way.
func (l *Local) confirm(dir string, epoch uint64) error {
	if l.stillSynced(dir, epoch) {
		return nil
	}
	err := l.syncDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return nil
	}
	return err
}

// diskErr classifies a disk error for callers of the Store.
func diskErr(op, key string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("objstore: local %s %q: %w: %w", op, key, ErrNotFound, err)
	case errors.Is(err, fs.ErrInvalid), errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("objstore: local %s %q: %w: %w", op, key, ErrPermanent, err)
	default:
		// I/O errors, a full disk, a crashed node: the operation may or may
		// not have happened and may work if retried.
		return fmt.Errorf("objstore: local %s %q: %w: %w", op, key, ErrTransient, err)
	}
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objstore: %w: %w", ErrTransient, err)
	}
	return nil
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, key string, data []byte, opts PutOptions) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	dir, file, err := keyPath(l.root, key)
	if err != nil {
		return err
	}
	name := joinPath(dir, file)
	tmp := joinPath(dir, l.tmpBase+strconv.FormatUint(l.tmpSeq.Add(1), 10))
	var f disk.File
	for attempt := 1; ; attempt++ {
		if err := disk.MkdirAllDurable(l.fs, dir); err != nil {
			if errors.Is(err, fs.ErrInvalid) {
				// A path element exists as a file: a stray non-object entry.
				return fmt.Errorf("objstore: local put %q: %w: %w", key, ErrPermanent, err)
			}
			if attempt < maxPutDirAttempts && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return diskErr("put", key, err)
		}
		f, err = l.fs.Create(tmp)
		if err == nil {
			break
		}
		if attempt >= maxPutDirAttempts || !errors.Is(err, fs.ErrNotExist) {
			return diskErr("put", key, err)
		}
	}
	if err := l.writeTemp(f, data); err != nil {
		_ = l.fs.Remove(tmp)
		return diskErr("put", key, err)
	}
	l.changing(dir)
	if opts.IfNoneMatch {
		err = l.fs.Link(tmp, name)
		_ = l.fs.Remove(tmp)
	} else if err = l.fs.Rename(tmp, name); err != nil {
		_ = l.fs.Remove(tmp)
	}
	l.changing(dir)
	taken := opts.IfNoneMatch && errors.Is(err, fs.ErrExist)
	if err != nil && !taken {
		return diskErr("put", key, err)
	}
	// Sync also when the name is taken: it may be from a Put whose
	// directory sync failed, and the caller takes ErrPreconditionFailed to
	// mean the object is there for good.
	if err := l.syncDir(dir); err != nil {
		return diskErr("put", key, err)
	}
	if taken {
		return fmt.Errorf("objstore: local put %q: %w: object exists", key, ErrPreconditionFailed)
	}
	return nil
}

func (l *Local) writeTemp(f disk.File, data []byte) error {
	hdr := make([]byte, localHeaderSize, localHeaderSize+len(data))
	copy(hdr, localMagic)
	var stamp int64
	if t := l.now(); !t.IsZero() {
		stamp = t.UnixNano()
	}
	binary.BigEndian.PutUint64(hdr[4:], uint64(stamp))
	if _, err := f.WriteAt(append(hdr, data...), 0); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// open opens key's object file and checks its header.
func (l *Local) open(op, key string) (disk.File, int64, time.Time, error) {
	dir, file, err := keyPath(l.root, key)
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	epoch := l.knownSynced(dir)
	f, err := l.fs.Open(joinPath(dir, file))
	if cerr := l.confirm(dir, epoch); cerr != nil {
		if err == nil {
			f.Close()
		}
		return nil, 0, time.Time{}, diskErr(op, key, cerr)
	}
	if err != nil {
		if errors.Is(err, fs.ErrInvalid) {
			// A path element is not a directory: no such object.
			return nil, 0, time.Time{}, fmt.Errorf("objstore: local %s %q: %w", op, key, ErrNotFound)
		}
		return nil, 0, time.Time{}, diskErr(op, key, err)
	}
	size, mod, err := readHeader(f)
	if err != nil {
		f.Close()
		return nil, 0, time.Time{}, diskErr(op, key, err)
	}
	return f, size, mod, nil
}

func readHeader(f disk.File) (size int64, mod time.Time, err error) {
	total, err := f.Size()
	if err != nil {
		return 0, time.Time{}, err
	}
	var hdr [localHeaderSize]byte
	if total < localHeaderSize {
		return 0, time.Time{}, fmt.Errorf("object file %q too short (%d bytes): %w", f.Name(), total, disk.ErrIO)
	}
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return 0, time.Time{}, err
	}
	if string(hdr[:4]) != localMagic {
		return 0, time.Time{}, fmt.Errorf("object file %q has a bad magic: %w", f.Name(), disk.ErrIO)
	}
	if stamp := int64(binary.BigEndian.Uint64(hdr[4:])); stamp != 0 {
		mod = time.Unix(0, stamp).UTC()
	}
	return total - localHeaderSize, mod, nil
}

// Get implements Store.
func (l *Local) Get(ctx context.Context, key string) ([]byte, error) {
	return l.GetRange(ctx, key, 0, -1)
}

// GetRange implements Store.
func (l *Local) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("objstore: local get %q: %w: negative offset %d", key, ErrPermanent, offset)
	}
	f, size, _, err := l.open("get", key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	end := size
	if length >= 0 && offset < size && length < size-offset { // no overflow for huge lengths
		end = offset + length
	}
	if offset >= end {
		return []byte{}, nil
	}
	buf := make([]byte, end-offset)
	n, err := f.ReadAt(buf, localHeaderSize+offset)
	if n < len(buf) {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("object file shrank while reading: %w", disk.ErrIO)
		}
		return nil, diskErr("get", key, err)
	}
	return buf, nil
}

// Head implements Store.
func (l *Local) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctxErr(ctx); err != nil {
		return ObjectInfo{}, err
	}
	f, size, mod, err := l.open("head", key)
	if err != nil {
		return ObjectInfo{}, err
	}
	f.Close()
	return ObjectInfo{Key: key, Size: size, LastModified: mod}, nil
}

// List implements Store. It walks only the directory the prefix selects and
// the subdirectories that can hold keys after StartAfter.
func (l *Local) List(ctx context.Context, prefix string, opts ListOptions) (Page, error) {
	if err := ctxErr(ctx); err != nil {
		return Page{}, err
	}
	maxKeys := opts.MaxKeys
	if maxKeys <= 0 || maxKeys > MaxListKeys {
		maxKeys = MaxListKeys
	}
	dir, keyBase, ok := prefixDir(l.root, prefix)
	if !ok {
		return Page{}, nil
	}
	var keys []listed
	if err := l.walk(dir, keyBase, prefix, opts.StartAfter, &keys); err != nil {
		return Page{}, err
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].key < keys[j].key })
	var page Page
	if len(keys) > maxKeys {
		keys = keys[:maxKeys]
		page.NextStartAfter = keys[maxKeys-1].key
	}
	for _, k := range keys {
		f, size, mod, err := l.open("list", k.key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the walk
		}
		if err != nil {
			return Page{}, err
		}
		f.Close()
		page.Objects = append(page.Objects, ObjectInfo{Key: k.key, Size: size, LastModified: mod})
	}
	return page, nil
}

type listed struct{ key string }

// walk collects the keys below dir (whose keys all start with keyBase) that
// have prefix and sort after startAfter.
func (l *Local) walk(dir, keyBase, prefix, startAfter string, out *[]listed) error {
	epoch := l.knownSynced(dir)
	ents, err := l.fs.ReadDir(dir)
	if cerr := l.confirm(dir, epoch); cerr != nil {
		return diskErr("list", keyBase, cerr)
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return nil // no such directory, or removed by a concurrent Delete
	}
	if err != nil {
		return diskErr("list", keyBase, err)
	}
	for _, e := range ents {
		name := e.Name()
		if name == "" {
			continue
		}
		seg, ok := unescSegment(name[1:])
		if !ok {
			continue // not ours
		}
		switch name[0] {
		case tagObject:
			if e.IsDir() {
				continue
			}
			key := keyBase + seg
			if strings.HasPrefix(key, prefix) && key > startAfter {
				*out = append(*out, listed{key})
			}
		case tagDir:
			if !e.IsDir() {
				continue
			}
			sub := keyBase + seg + "/"
			// Every key below starts with sub: skip the subtree if that
			// rules out the prefix, or puts all of it at or before
			// startAfter.
			if !strings.HasPrefix(sub, prefix) && !strings.HasPrefix(prefix, sub) {
				continue
			}
			if sub < startAfter && !strings.HasPrefix(startAfter, sub) {
				continue
			}
			if err := l.walk(joinPath(dir, name), sub, prefix, startAfter, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete implements Store. Directories left empty are removed, so deleted
// prefixes do not slow List down.
func (l *Local) Delete(ctx context.Context, keys []string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if len(keys) > MaxDeleteBatch {
		return fmt.Errorf("objstore: local delete: %w: %d keys exceed the batch limit %d", ErrPermanent, len(keys), MaxDeleteBatch)
	}
	// removed[dir]: whether this call removed something there. Every
	// key's directory is synced, also where the key was already gone: an
	// earlier Delete whose directory sync failed may have removed it, and
	// success here says the removal is for good.
	removed := map[string]bool{}
	for _, key := range keys {
		dir, file, err := keyPath(l.root, key)
		if err != nil {
			return err
		}
		l.changing(dir)
		err = l.fs.Remove(joinPath(dir, file))
		l.changing(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrInvalid) {
			return diskErr("delete", key, err)
		}
		removed[dir] = removed[dir] || err == nil
	}
	names := make([]string, 0, len(removed))
	for d := range removed {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		if err := l.syncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrInvalid) {
			return diskErr("delete", d, err)
		}
		if removed[d] {
			l.pruneDirs(d)
		}
	}
	return nil
}

// pruneDirs removes dir and its ancestors below root while they are empty.
// It is best effort: a concurrent Put may refill a directory, and then
// Remove fails harmlessly.
func (l *Local) pruneDirs(dir string) {
	for dir != l.root && strings.HasPrefix(dir, l.rootPrefix()) {
		parent := disk.Parent(dir)
		l.changing(parent)
		err := l.fs.Remove(dir)
		l.changing(parent)
		if err != nil {
			return
		}
		l.forget(dir)
		if err := l.syncDir(parent); err != nil {
			return
		}
		dir = parent
	}
}

// forget drops what Local knows of a removed directory.
func (l *Local) forget(dir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.dirs, dir)
}

func (l *Local) rootPrefix() string {
	if l.root == "." {
		return ""
	}
	return l.root + "/"
}

// Copy implements Store.
func (l *Local) Copy(ctx context.Context, src, dst string) error {
	data, err := l.Get(ctx, src)
	if err != nil {
		return err
	}
	return l.Put(ctx, dst, data, PutOptions{})
}
