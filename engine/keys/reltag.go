package keys

import (
	"cmp"
	"fmt"
)

// ForkNum names a relation fork (Postgres' ForkNumber).
type ForkNum = uint8

// The relation forks.
const (
	ForkMain ForkNum = 0
	ForkFSM  ForkNum = 1
	ForkVM   ForkNum = 2
	ForkInit ForkNum = 3
)

// BlockSize is the page size (Postgres' BLCKSZ).
const BlockSize = 8192

// sizeBlock is the field6 value that marks a size key instead of a block.
const sizeBlock = 0xFFFFFFFF

// MaxBlockNumber is the largest block number a relation block key can hold:
// field6 0xFFFFFFFF is taken by the relation size key.
const MaxBlockNumber = sizeBlock - 1

// RelTag names one fork of one relation.
type RelTag struct {
	SpcNode uint32
	DbNode  uint32
	RelNode uint32
	ForkNum ForkNum
}

// Compare orders tags by (spc, db, rel, fork).
func (r RelTag) Compare(o RelTag) int {
	if c := cmp.Compare(r.SpcNode, o.SpcNode); c != 0 {
		return c
	}
	if c := cmp.Compare(r.DbNode, o.DbNode); c != 0 {
		return c
	}
	if c := cmp.Compare(r.RelNode, o.RelNode); c != 0 {
		return c
	}
	return cmp.Compare(r.ForkNum, o.ForkNum)
}

// Less reports r < o.
func (r RelTag) Less(o RelTag) bool { return r.Compare(o) < 0 }

// String is Postgres-like: spc/db/rel with a fork suffix for non-main forks.
func (r RelTag) String() string {
	s := fmt.Sprintf("%d/%d/%d", r.SpcNode, r.DbNode, r.RelNode)
	switch r.ForkNum {
	case ForkMain:
		return s
	case ForkFSM:
		return s + "_fsm"
	case ForkVM:
		return s + "_vm"
	case ForkInit:
		return s + "_init"
	default:
		return fmt.Sprintf("%s_fork%d", s, r.ForkNum)
	}
}

// SlruKind names an SLRU (Neon's numbering).
type SlruKind = uint32

// The SLRU kinds.
const (
	SlruClog            SlruKind = 0
	SlruMultiXactMember SlruKind = 1
	SlruMultiXactOffset SlruKind = 2
)

// RelBlockKey is the key of block blk of rel: 00 spc db rel fork blk.
// blk must be at most MaxBlockNumber (the all-ones value is the size key).
func RelBlockKey(rel RelTag, blk uint32) Key {
	return Key{0x00, rel.SpcNode, rel.DbNode, rel.RelNode, rel.ForkNum, blk}
}

// RelSizeKey is the key holding rel's size in blocks: 00 spc db rel fork FFFFFFFF.
func RelSizeKey(rel RelTag) Key {
	return Key{0x00, rel.SpcNode, rel.DbNode, rel.RelNode, rel.ForkNum, sizeBlock}
}

// DbDirKey is the database directory key: 00 0 0 0 0 0.
func DbDirKey() Key { return Key{} }

// RelMapKey is the relation-map key of a database: 00 spc db 0 0 0.
func RelMapKey(spc, db uint32) Key { return Key{0x00, spc, db, 0, 0, 0} }

// RelDirKey is the relation directory key of a database: 00 spc db 0 0 1.
func RelDirKey(spc, db uint32) Key { return Key{0x00, spc, db, 0, 0, 1} }

// SlruDirKey is the segment directory of an SLRU: 01 kind 0 0 0 0.
func SlruDirKey(kind SlruKind) Key { return Key{0x01, kind, 0, 0, 0, 0} }

// SlruBlockKey is block blk of SLRU segment segno: 01 kind 1 segno 0 blk.
func SlruBlockKey(kind SlruKind, segno, blk uint32) Key {
	return Key{0x01, kind, 1, segno, 0, blk}
}

// SlruSizeKey is the size of SLRU segment segno: 01 kind 1 segno 0 FFFFFFFF.
func SlruSizeKey(kind SlruKind, segno uint32) Key {
	return Key{0x01, kind, 1, segno, 0, sizeBlock}
}

// ControlFileKey is the control-file key: 03 0 0 0 0 0.
func ControlFileKey() Key { return Key{0x03, 0, 0, 0, 0, 0} }

// CheckpointKey is the checkpoint key: 03 0 0 0 0 1.
func CheckpointKey() Key { return Key{0x03, 0, 0, 0, 0, 1} }

// AuxFilesKey is the (v1) aux-files key: 03 0 0 0 0 2.
func AuxFilesKey() Key { return Key{0x03, 0, 0, 0, 0, 2} }

// RelKeyRange is the range holding every key of rel (its blocks and its
// size key): [RelBlockKey(rel,0), RelSizeKey(rel).Next()).
func RelKeyRange(rel RelTag) Range {
	return Range{Start: RelBlockKey(rel, 0), End: RelSizeKey(rel).Next()}
}
