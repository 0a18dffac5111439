// Package layer holds layer names and layer files.
//
// A layer name (docs/neon-compat.md, Layer file names) says what a
// layer covers: a delta layer holds values for a key range over a
// half-open LSN range, an image layer holds values for a key range at one
// LSN; the physical file name may carry the generation that wrote it.
//
// A layer file (docs/layer-files.md) is written once, atomically (temp
// file, sync, rename, directory sync), and then only read. Its header,
// block table, index and every compressed data block are covered by crc32c
// checksums and the file's size is recorded in the header, so any
// corruption is reported as ErrCorrupt: a reader never panics and never
// returns a wrong value.
//
// Readers cache decompressed blocks (and decoded delta values) and hand out
// read-only views of them (ImageReader.View, DeltaReader.Entry): a cached
// block is never written to and its memory is never reused, so a view stays
// valid, but callers must copy before modifying. Get on an image reader
// returns a copy.
//
// Invariants: ParseName(n.String()) == ParseName(n.LocalFileName()) == n
// for every valid n, and s is n.String() or n.LocalFileName() (Neon's local
// "<layer name>-v1-<gen>" form) for every s ParseName accepts; entries in a file are sorted by (key,
// LSN), unique, and inside the header's key and LSN ranges; non-empty values
// fill the blocks back to back in index order, and an empty value (an image
// tombstone) is stored in no block.
package layer
