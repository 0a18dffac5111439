// Package remote holds the remote-storage form of a timeline: the object
// keys of layers, indexes and heatmaps (Layout), the timeline index
// index_part.json (IndexPart: Parse and Encode), a tenant shard's heatmap
// (Heatmap: ParseHeatmap and EncodeHeatmap), the choice of the index a
// location attached with a given generation starts from (PickIndex,
// DownloadIndex), and the retry policy of downloads (Retrier). What each
// of them follows is written down in docs/remote-storage.md.
//
// The package does no I/O of its own except through the object-store seam
// it is handed (disk/objstore) and sleeps only on the clock seam, so it
// runs unchanged under the simulator.
//
// Invariants:
//
//   - Layer names are typed values (layer.Name with the generation that
//     wrote the object, plus the writing shard: LayerID) everywhere; a key
//     string exists only at the object-store boundary, built by Layout.
//     Two remote layers are the same object iff their LayerIDs are equal.
//   - IndexPart.Layers is sorted by bare layer name and holds each bare
//     name at most once, as the JSON map it comes from does.
//   - Parse accepts every index_part.json version from 1 to MaxVersion,
//     ignores unknown fields, reads integers exactly (never through a
//     float64) and verifies the legacy binary metadata's checksum; every
//     rejection wraps ErrCorrupt or ErrUnsupportedVersion.
//   - Encode writes CurrentVersion with the metadata object, and refuses an
//     index that names no layers and has no ancestor (ErrEmptyIndex): such
//     an index is never uploaded. For every index Encode accepts,
//     Parse(Encode(ip)) equals ip with Version set to CurrentVersion.
//   - PickIndex never chooses an index of a generation above the caller's.
//   - ParseHeatmap ignores unknown fields, reads sizes exactly and wraps
//     every rejection in ErrCorruptHeatmap; for every heatmap it returns,
//     ParseHeatmap(EncodeHeatmap(h)) equals h.
//   - A Retrier retries only transient errors (objstore.Retryable, and
//     objstore.ErrNotFound when the caller asks), at most MaxRetries times,
//     sleeping on the clock it was given.
package remote
