// Package shard holds tenant and timeline ids, shard identities and the
// key → shard mapping (docs/neon-compat.md, Shards), bit-compatible with Neon:
// a tenant is split into ShardCount shards; relation blocks are striped
// over them by a hash of (relnode, block / stripe size); every other key
// lives on shard 0, except metadata such as relation sizes, which every
// shard keeps.
//
// Invariants: for count >= 2 KeyToShard(k) < count; a key is local to
// exactly one shard unless it is global (IsKeyGlobal), in which case it is
// local to all; Parse(x.String()) == x for every id type; SplitChildren of
// a shard lists the children whose keys are a subset of the parent's.
package shard
