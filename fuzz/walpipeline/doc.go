// Package walpipeline holds a cross-package fuzz target for the write path
// of one page engine step: WAL records are framed into a stream
// (engine/walrec), decoded back, decomposed into per-key values, stored in
// a delta layer file (engine/layer) and replayed by Redo. The invariant: the
// page read back through the layer equals a plain model of what the records
// wrote, and every key lands in exactly one shard's local set
// (engine/shard).
package walpipeline
