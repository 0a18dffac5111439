package simdisk

import "math/rand/v2"

// Crash simulates power loss. Every File opened before it fails with
// disk.ErrCrashed from then on. The tree is rebuilt from the root's durable
// entries and each surviving file keeps its durable content. With tear,
// unsynced state may partly survive instead: each 512-byte sector an
// unsynced write changed keeps its old or new content, an unsynced
// extension keeps a prefix of its sectors, and each directory with unsynced
// entry changes keeps all old or all new entries. rng makes every choice, in
// a fixed order (files and directories visited by sorted name), so the same
// rng state gives the same outcome.
func (f *FS) Crash(rng *rand.Rand, tear bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.incarnation++
	c := crash{rng: rng, tear: tear, visited: map[uint64]bool{}}
	c.dir(f.root)
	f.usedBytes = c.usedBytes
	f.root.nlink = 1
}

type crash struct {
	rng       *rand.Rand
	tear      bool
	visited   map[uint64]bool
	usedBytes int64
}

// dir rebuilds a directory that survived, then everything it names.
func (c *crash) dir(d *inode) {
	c.visited[d.id] = true
	keep := d.durableEntries
	if c.tear && d.entriesDirty && c.rng.IntN(2) == 0 {
		keep = d.entries
	}
	d.entries = map[string]*inode{}
	for _, name := range sortedNames(keep) {
		child := keep[name]
		if child.dir && c.visited[child.id] {
			// Mixing old and new entries of different directories can name
			// a directory twice (or form a cycle) when a directory rename
			// was synced on one side only; a real file system's fsck would
			// drop the second name, and so do we.
			continue
		}
		d.entries[name] = child
		if !c.visited[child.id] {
			child.nlink = 0
			child.open = 0
			if child.dir {
				c.dir(child)
			} else {
				c.visited[child.id] = true
				c.file(child)
			}
		}
		child.nlink++
	}
	d.durableEntries = cloneEntries(d.entries)
	d.entriesDirty = false
}

// file replaces a surviving file's content with what the crash left.
func (c *crash) file(ino *inode) {
	if !ino.clean() && c.tear {
		ino.durable = c.torn(ino)
	}
	ino.data = append([]byte(nil), ino.durable...)
	ino.dirtyLo, ino.dirtyHi = 0, 0
	c.usedBytes += int64(len(ino.data))
}

// torn returns the durable content with a random subset of the unsynced
// sectors applied. Bytes outside unsynced writes keep their durable value.
func (c *crash) torn(ino *inode) []byte {
	oldLen, newLen := int64(len(ino.durable)), int64(len(ino.data))
	out := append([]byte(nil), ino.durable...)
	// Overwritten sectors within the common length: each independently.
	lo, hi := ino.dirtyLo, min(ino.dirtyHi, oldLen, newLen)
	if lo < hi {
		for s := lo / SectorSize * SectorSize; s < hi; s += SectorSize {
			e := min(s+SectorSize, hi)
			b := max(s, lo)
			if string(out[b:e]) == string(ino.data[b:e]) {
				continue
			}
			if c.rng.IntN(2) == 0 {
				copy(out[b:e], ino.data[b:e])
			}
		}
	}
	// An unsynced extension survives as a prefix of its sectors (data before
	// the size update that covers it, as journaling file systems order it).
	// An unsynced shrink is simply lost: it would discard synced bytes.
	if newLen > oldLen {
		firstEnd := min((oldLen/SectorSize+1)*SectorSize, newLen)
		sectors := 1 + (newLen-firstEnd+SectorSize-1)/SectorSize
		k := c.rng.Int64N(sectors + 1)
		if k > 0 {
			end := min(firstEnd+(k-1)*SectorSize, newLen)
			out = append(out, ino.data[oldLen:end]...)
		}
	}
	return out
}

// Exit ends the current incarnation as a process exit does: every View and
// File of it fails with disk.ErrCrashed from then on (a process that is gone
// cannot write), but all content stays, synced or not (the OS still holds
// it). Handles die with their process, so files that were unlinked while
// open stop taking space.
func (f *FS) Exit() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.incarnation++
	visited := map[uint64]bool{}
	var used int64
	var walk func(d *inode)
	walk = func(d *inode) {
		visited[d.id] = true
		for _, name := range sortedNames(d.entries) {
			child := d.entries[name]
			if visited[child.id] {
				continue
			}
			visited[child.id] = true
			child.open = 0
			if child.dir {
				walk(child)
				continue
			}
			used += int64(len(child.data))
		}
	}
	walk(f.root)
	f.usedBytes = used
}
