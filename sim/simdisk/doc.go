// Package simdisk is the simulator's in-memory disk.FS. It implements the
// crash contract of package disk exactly and adversarially, so that code
// which forgets a Sync or a SyncDir loses data in simulation rather than in
// production.
//
// Model. Files and directories are inodes. A file inode holds its current
// bytes (what reads see) and its durable bytes (what survives a crash); Sync
// copies current to durable. A directory inode holds its current entries and
// its durable entries; SyncDir copies current to durable. Crash rebuilds the
// tree from the root's durable entries, so an unsynced create, rename, link
// or remove is undone and unsynced file data is dropped. With tearing, each
// 512-byte sector an unsynced write touched independently keeps its old or
// its new content (an append keeps a prefix of its sectors), and each
// directory with unsynced changes keeps either its old or its new entries.
// Synced bytes are never torn.
//
// After Crash the same FS keeps serving the surviving state (the node
// restarts on it); every File opened before the crash fails with
// disk.ErrCrashed. View returns a disk.FS bound to the current incarnation:
// after a crash every call through it fails with disk.ErrCrashed too, even
// one that was asleep in its simulated latency when the crash came, so a
// node should get a fresh View per incarnation. Exit ends an incarnation as
// a process exit does: its Views and Files fail the same way, but every
// byte written stays, synced or not.
//
// Invariants: deterministic (no goroutines, no real time, every map is read
// in sorted key order, all randomness comes from a *rand.Rand the caller
// supplies); safe for concurrent use (one mutex, never held across the
// optional Sleep hook).
package simdisk
