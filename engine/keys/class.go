package keys

// Class says what a key holds, decided from its layout alone.
type Class uint8

// The key classes (docs/neon-compat.md, Keys).
const (
	ClassUnknown Class = iota
	ClassRelBlock
	ClassRelSize
	ClassDbDir
	ClassRelMap
	ClassRelDir
	ClassSlruDir
	ClassSlruBlock
	ClassSlruSize
	ClassControlFile
	ClassCheckpoint
	ClassAuxFiles
	ClassSparseMetadata
)

func (c Class) String() string {
	switch c {
	case ClassRelBlock:
		return "rel-block"
	case ClassRelSize:
		return "rel-size"
	case ClassDbDir:
		return "db-dir"
	case ClassRelMap:
		return "rel-map"
	case ClassRelDir:
		return "rel-dir"
	case ClassSlruDir:
		return "slru-dir"
	case ClassSlruBlock:
		return "slru-block"
	case ClassSlruSize:
		return "slru-size"
	case ClassControlFile:
		return "control-file"
	case ClassCheckpoint:
		return "checkpoint"
	case ClassAuxFiles:
		return "aux-files"
	case ClassSparseMetadata:
		return "sparse-metadata"
	}
	return "unknown"
}

// The sparse metadata keyspace is every key with field1 in
// SparseField1Min..SparseField1Max.
const (
	SparseField1Min = 0x60
	SparseField1Max = 0x7F
)

// SparseRange is the key range of the sparse metadata keyspace.
func SparseRange() Range {
	return Range{Start: Key{Field1: SparseField1Min}, End: Key{Field1: SparseField1Max + 1}}
}

// ClassOf classifies k. Keys that fit no layout in docs/neon-compat.md are
// ClassUnknown. The relation patterns are checked in the order that makes
// the zero-relation special keys (db dir, rel map, rel dir) win over the
// generic relation-block reading, as Neon does.
func ClassOf(k Key) Class {
	switch {
	case k.Field1 == 0x00:
		if k.Field4 == 0 && k.Field5 == 0 {
			// relnode 0 is never a real relation: these are directory keys.
			switch {
			case k.Field2 == 0 && k.Field3 == 0 && k.Field6 == 0:
				return ClassDbDir
			case k.Field6 == 0:
				return ClassRelMap
			case k.Field6 == 1:
				return ClassRelDir
			}
			return ClassUnknown
		}
		if k.Field4 == 0 {
			return ClassUnknown
		}
		if k.Field6 == sizeBlock {
			return ClassRelSize
		}
		return ClassRelBlock
	case k.Field1 == 0x01:
		switch {
		case k.Field3 == 0 && k.Field4 == 0 && k.Field5 == 0 && k.Field6 == 0:
			return ClassSlruDir
		case k.Field3 == 1 && k.Field5 == 0 && k.Field6 == sizeBlock:
			return ClassSlruSize
		case k.Field3 == 1 && k.Field5 == 0:
			return ClassSlruBlock
		}
		return ClassUnknown
	case k.Field1 == 0x03:
		if k.Field2 != 0 || k.Field3 != 0 || k.Field4 != 0 || k.Field5 != 0 {
			return ClassUnknown
		}
		switch k.Field6 {
		case 0:
			return ClassControlFile
		case 1:
			return ClassCheckpoint
		case 2:
			return ClassAuxFiles
		}
		return ClassUnknown
	case k.IsSparse():
		return ClassSparseMetadata
	}
	return ClassUnknown
}

// Class is ClassOf(k).
func (k Key) Class() Class { return ClassOf(k) }

// IsRelBlock reports whether k is a relation block key.
func (k Key) IsRelBlock() bool { return ClassOf(k) == ClassRelBlock }

// IsRelSize reports whether k is a relation size key.
func (k Key) IsRelSize() bool { return ClassOf(k) == ClassRelSize }

// IsRelKey reports whether k is a relation block or size key, i.e. whether
// ToRelTag is meaningful.
func (k Key) IsRelKey() bool {
	c := ClassOf(k)
	return c == ClassRelBlock || c == ClassRelSize
}

// IsSparse reports whether k is in the sparse metadata keyspace.
func (k Key) IsSparse() bool { return k.Field1 >= SparseField1Min && k.Field1 <= SparseField1Max }

// ToRelTag returns the relation of a relation block or size key; ok is false
// for any other key.
func (k Key) ToRelTag() (rel RelTag, ok bool) {
	if !k.IsRelKey() {
		return RelTag{}, false
	}
	return RelTag{SpcNode: k.Field2, DbNode: k.Field3, RelNode: k.Field4, ForkNum: k.Field5}, true
}

// BlockNumber returns the block of a relation or SLRU block key; ok is
// false for any other key.
func (k Key) BlockNumber() (blk uint32, ok bool) {
	switch ClassOf(k) {
	case ClassRelBlock, ClassSlruBlock:
		return k.Field6, true
	}
	return 0, false
}
