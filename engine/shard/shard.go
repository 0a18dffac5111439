package shard

import (
	"errors"
	"fmt"

	"github.com/stratadb/strata/engine/keys"
)

// ErrSyntax reports a malformed id or shard text; ErrInvalid an impossible
// shard identity (number >= count, zero stripe).
var (
	ErrSyntax  = errors.New("shard: malformed id")
	ErrInvalid = errors.New("shard: invalid shard identity")
)

// ShardNumber is a shard's index within its tenant, 0..count-1.
type ShardNumber uint8

// ShardCount is how many shards a tenant has; 0 means a legacy unsharded
// tenant (ids carry no suffix), 1 a single shard with suffix 0001.
type ShardCount uint8

// DefaultStripeSize is the default stripe, in pages (2048 pages = 16 MiB).
const DefaultStripeSize uint32 = 2048

// ShardIdentity is the shard a pageserver location serves and how the
// tenant is striped.
type ShardIdentity struct {
	Number ShardNumber
	Count  ShardCount
	// StripeSize is the number of consecutive blocks of a relation that
	// map to the same shard, in pages.
	StripeSize uint32
}

// Unsharded is the identity of a legacy unsharded tenant.
func Unsharded() ShardIdentity {
	return ShardIdentity{StripeSize: DefaultStripeSize}
}

// Validate checks number < count (or 0 for unsharded) and a non-zero stripe.
func (s ShardIdentity) Validate() error {
	if s.Count == 0 && s.Number != 0 {
		return fmt.Errorf("%w: number %d of an unsharded tenant", ErrInvalid, s.Number)
	}
	if s.Count > 0 && uint8(s.Number) >= uint8(s.Count) {
		return fmt.Errorf("%w: number %d of count %d", ErrInvalid, s.Number, s.Count)
	}
	if s.StripeSize == 0 {
		return fmt.Errorf("%w: stripe size 0", ErrInvalid)
	}
	return nil
}

// IsUnsharded reports whether s is the legacy unsharded identity.
func (s ShardIdentity) IsUnsharded() bool { return s.Count == 0 }

// Index is s's shard index (number and count).
func (s ShardIdentity) Index() ShardIndex { return ShardIndex{Number: s.Number, Count: s.Count} }

// murmurhash32 is the 32-bit murmur3 finalizer.
func murmurhash32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x85ebca6b
	x ^= x >> 13
	x *= 0xc2b2ae35
	x ^= x >> 16
	return x
}

// hashCombine mixes b into a (boost's hash_combine).
func hashCombine(a, b uint32) uint32 {
	b += 0x9e3779b9 + (a << 6) + (a >> 2)
	a ^= b
	return a
}

// IsShard0Key reports whether k is stored by shard 0 regardless of the
// stripe mapping: every key that is not a relation block, and the blocks
// of init forks (small, and needed whole by whoever resets an unlogged
// relation).
func IsShard0Key(k keys.Key) bool {
	if !k.IsRelBlock() {
		return true
	}
	return k.Field5 == keys.ForkInit
}

// KeyToShard maps k to its shard for a tenant of count shards striped by
// stripe pages. The hash covers only the relnode and the block's stripe,
// so a relation's consecutive stripes spread over the shards.
// A zero stripe is invalid (Validate rejects it); it is read as
// DefaultStripeSize here so that a bad identity can never divide by zero.
func KeyToShard(k keys.Key, count ShardCount, stripe uint32) ShardNumber {
	if count < 2 || IsShard0Key(k) {
		return 0
	}
	if stripe == 0 {
		stripe = DefaultStripeSize
	}
	h := murmurhash32(k.Field4)
	h = hashCombine(h, murmurhash32(k.Field6/stripe))
	return ShardNumber(h % uint32(count))
}

// IsKeyGlobal reports whether every shard stores k: relation sizes and the
// other metadata keys (directories, rel map, control file, checkpoint).
// Relation blocks, SLRU keys, aux files and the sparse keyspace are not
// global: they live only where KeyToShard says.
func IsKeyGlobal(k keys.Key) bool {
	switch k.Class() {
	case keys.ClassRelBlock, keys.ClassSlruBlock, keys.ClassSlruSize, keys.ClassSlruDir,
		keys.ClassAuxFiles, keys.ClassSparseMetadata:
		return false
	}
	return true
}

// ShardOf is KeyToShard with s's count and stripe.
func (s ShardIdentity) ShardOf(k keys.Key) ShardNumber {
	return KeyToShard(k, s.Count, s.StripeSize)
}

// Owns reports whether s is the one shard responsible for k (where writes
// for k are ingested and reads are answered). Global keys are owned by
// shard 0, although every shard stores them (see IsKeyLocal).
func (s ShardIdentity) Owns(k keys.Key) bool {
	return s.ShardOf(k) == s.Number
}

// IsKeyLocal reports whether s stores k: global keys are stored on every
// shard, all others only on their owner.
func (s ShardIdentity) IsKeyLocal(k keys.Key) bool {
	return s.Count < 2 || IsKeyGlobal(k) || s.Owns(k)
}

// String is the shard index text followed by the stripe, e.g. "0102/2048";
// unsharded is "unsharded".
func (s ShardIdentity) String() string {
	if s.IsUnsharded() {
		return "unsharded"
	}
	return fmt.Sprintf("%s/%d", s.Index(), s.StripeSize)
}
