// Package layercache bounds how many layer files are open at once.
//
// A page engine keeps every layer file of every version it serves readable,
// but a node with many tenants, timelines and layers cannot keep a file
// descriptor (and a reader's index and block cache) per layer. A Cache,
// shared by everything on a node, holds one Handle per layer file; a
// Handle's file is opened on demand and may be closed again when more than
// Config.MaxOpenFiles are open, least recently used first. Every use of a
// file is bracketed by Acquire and Release (a pin); reopening runs the
// handle's Opener again, so whatever the opener checks (the layer file's
// header and metadata checksums, in engine/timeline) is checked again on
// every reopen.
//
// Invariants:
//   - A pinned handle's file is never closed: eviction takes only idle
//     (open, unpinned) handles. Remove of a pinned handle closes its file
//     at the last Release.
//   - The files open at once (counting those being opened and those being
//     closed) are at most MaxOpenFiles, or the number of pinned handles
//     plus opens under way when that is more: the limit is soft only while
//     every open file is in use (Stats.OverLimit counts such opens), and
//     the excess is closed as soon as its pins are released.
//   - Eviction order is least recently released first (an intrusive list,
//     so it depends on no map order, and a hit allocates nothing).
//   - A removed handle never opens again: Acquire fails with ErrRemoved.
//   - CloseIfIdle closes a file only when no pin holds it and no Acquire
//     is opening it: a node evicting a layer file from its disk
//     (engine/timeline) never takes one a read is using.
//   - LastUse orders every handle by its last Acquire across the cache
//     (one counter per cache, so the order spans a node's tenants).
//
// Concurrency: safe for use from many tasks. One short mutex guards the
// cache's state and is never held across an open or a close, so tasks of
// the simulator, which switch at disk calls, never wait on it across I/O.
// Two tasks acquiring the same closed handle at once may both open it; the
// second file is closed and the first shared (each counted while open).
package layercache
