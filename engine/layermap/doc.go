// Package layermap holds the index of a timeline's layers and the read path's
// search over it: for a key at LSN L, which layers hold the values needed to
// reconstruct the page, newest first, down to an image.
//
// A Map is immutable: every change returns a new Map, so a reader can search a
// snapshot without locks while the timeline flushes, compacts or collects
// garbage (copy-on-write, like Neon's layer map behind an RCU).
//
// Layers:
//   - the open in-memory layer, covering every key over [start, ∞);
//   - frozen in-memory layers, each covering every key over [start, end);
//   - historic layers (files): deltas over a key range and an LSN range
//     [start, end), and images over a key range at one LSN X, whose LSN range
//     is [X, X+1). The map knows a historic layer by its descriptor only:
//     whether its file is on the local disk or still in object storage
//     (resident or remote, engine/timeline's residency) is the Layer's
//     business, so a download or an eviction never changes a Map; a remote
//     layer's Collect downloads it first.
//
// Invariants (checked by Check, relied on by Search):
//   - In-memory layers are newer than every historic layer: each starts at or
//     above the end of every historic delta and above every image LSN.
//   - No two historic delta layers overlap in both key range and LSN range:
//     compaction replaces its inputs atomically with outputs over the same
//     LSN range, so a (key, LSN) point lives in exactly one delta.
//   - An image layer holds every key of its key range that existed at its
//     LSN: a key it covers but does not hold did not exist then, so the
//     search stops there.
//
// Search rule (Neon's select_layer generalised): with an exclusive upper
// bound cont, take the covering layer whose end (clamped to cont) is highest,
// preferring an image on a tie. If it is a delta and an image of a covered
// key lies inside its LSN range, read the delta only above that image and
// continue from the image's LSN+1, where the image wins the tie next time.
//
// Index: historic layers are sorted by (end desc, images first, start desc,
// key start). Layers with equal LSN range and kind form a run sorted by key
// (one compaction's partitions); the search binary-searches the LSN bound,
// then a key's partition within each delta run.
package layermap
