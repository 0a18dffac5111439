package shard

import (
	"errors"
	"reflect"
	"testing"

	"github.com/stratadb/strata/engine/keys"
)

func TestHashVectors(t *testing.T) {
	// The hash vectors of docs/neon-compat.md, Shards.
	if got := murmurhash32(0); got != 0 {
		t.Errorf("murmurhash32(0) = %#x, want 0", got)
	}
	if got := hashCombine(0xb1ff3b40, 0); got != 0xfb7923c9 {
		t.Errorf("hash_combine(0xb1ff3b40, 0) = %#x, want 0xfb7923c9", got)
	}
}

func TestKeyToShard(t *testing.T) {
	rel := keys.RelTag{SpcNode: 0x67f, DbNode: 5, RelNode: 0x400c}
	tests := []struct {
		name   string
		key    keys.Key
		count  ShardCount
		stripe uint32
		want   ShardNumber
	}{
		// Neon's own spot check of its mapping (shard.rs, stripe 32768).
		{"neon vector", keys.RelBlockKey(rel, 0x7d06), 10, 32768, 8},
		{"unsharded", keys.RelBlockKey(rel, 0x7d06), 0, 32768, 0},
		{"one shard", keys.RelBlockKey(rel, 0x7d06), 1, 32768, 0},
		{"rel size is shard 0", keys.RelSizeKey(rel), 10, 32768, 0},
		{"init fork is shard 0", keys.RelBlockKey(keys.RelTag{SpcNode: 0x67f, DbNode: 5, RelNode: 0x400c, ForkNum: keys.ForkInit}, 0x7d06), 10, 32768, 0},
		{"slru is shard 0", keys.SlruBlockKey(keys.SlruClog, 0, 5), 10, 32768, 0},
		{"aux is shard 0", keys.AuxFilesKey(), 10, 32768, 0},
		{"zero stripe is default", keys.RelBlockKey(rel, 0x7d06), 10, 0, KeyToShard(keys.RelBlockKey(rel, 0x7d06), 10, DefaultStripeSize)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := KeyToShard(tc.key, tc.count, tc.stripe); got != tc.want {
				t.Fatalf("KeyToShard = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestStripesStayTogether(t *testing.T) {
	rel := keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}
	const stripe = 16
	counts := make([]int, 4)
	for blk := uint32(0); blk < 64*stripe; blk++ {
		s := KeyToShard(keys.RelBlockKey(rel, blk), 4, stripe)
		if s >= 4 {
			t.Fatalf("shard %d out of range", s)
		}
		if first := KeyToShard(keys.RelBlockKey(rel, blk-blk%stripe), 4, stripe); s != first {
			t.Fatalf("block %d on shard %d, its stripe start on %d", blk, s, first)
		}
		counts[s]++
	}
	for i, c := range counts {
		if c == 0 {
			t.Errorf("shard %d got no blocks of 64 stripes", i)
		}
	}
}

func TestLocality(t *testing.T) {
	rel := keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}
	global := []keys.Key{keys.RelSizeKey(rel), keys.DbDirKey(), keys.RelDirKey(1663, 5), keys.RelMapKey(1663, 5), keys.ControlFileKey(), keys.CheckpointKey()}
	shard0 := []keys.Key{keys.SlruBlockKey(keys.SlruClog, 1, 2), keys.SlruSizeKey(keys.SlruClog, 1), keys.SlruDirKey(keys.SlruClog), keys.AuxFilesKey(), {Field1: 0x62, Field6: 3}}
	for n := ShardNumber(0); n < 4; n++ {
		id := ShardIdentity{Number: n, Count: 4, StripeSize: 8}
		for _, k := range global {
			if !IsKeyGlobal(k) || !id.IsKeyLocal(k) {
				t.Errorf("shard %d: global key %v not local", n, k)
			}
			if id.Owns(k) != (n == 0) {
				t.Errorf("shard %d: Owns(%v) = %v", n, k, id.Owns(k))
			}
		}
		for _, k := range shard0 {
			if IsKeyGlobal(k) || id.IsKeyLocal(k) != (n == 0) {
				t.Errorf("shard %d: shard-0 key %v local = %v", n, k, id.IsKeyLocal(k))
			}
		}
	}
	// Every relation block is local to exactly one shard.
	for blk := uint32(0); blk < 200; blk++ {
		k := keys.RelBlockKey(rel, blk)
		n := 0
		for s := ShardNumber(0); s < 4; s++ {
			if (ShardIdentity{Number: s, Count: 4, StripeSize: 8}).IsKeyLocal(k) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("block %d local to %d shards", blk, n)
		}
	}
	if !Unsharded().IsKeyLocal(keys.RelBlockKey(rel, 7)) || !Unsharded().Owns(keys.SlruDirKey(0)) {
		t.Error("an unsharded tenant holds everything")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		id ShardIdentity
		ok bool
	}{
		{Unsharded(), true},
		{ShardIdentity{Number: 0, Count: 1, StripeSize: 1}, true},
		{ShardIdentity{Number: 3, Count: 4, StripeSize: 8}, true},
		{ShardIdentity{Number: 4, Count: 4, StripeSize: 8}, false},
		{ShardIdentity{Number: 1, Count: 0, StripeSize: 8}, false},
		{ShardIdentity{Number: 0, Count: 2, StripeSize: 0}, false},
	}
	for _, tc := range tests {
		err := tc.id.Validate()
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v", tc.id, err)
		}
	}
	if s := (ShardIdentity{Number: 1, Count: 2, StripeSize: 2048}).String(); s != "0102/2048" {
		t.Errorf("String = %q", s)
	}
}

const exampleTenant = "1f359dd625e519a1a4e8d7509690f6fc"

func TestTenantShardIDText(t *testing.T) {
	tid, err := ParseTenantID(exampleTenant)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		s  string
		id TenantShardID
	}{
		{exampleTenant + "-070a", TenantShardID{tid, ShardIndex{Number: 7, Count: 10}}},
		{exampleTenant + "-0001", TenantShardID{tid, ShardIndex{Number: 0, Count: 1}}},
		{exampleTenant, UnshardedID(tid)},
	}
	for _, tc := range tests {
		got, err := ParseTenantShardID(tc.s)
		if err != nil || got != tc.id {
			t.Errorf("Parse(%q) = %+v, %v", tc.s, got, err)
		}
		if tc.id.String() != tc.s {
			t.Errorf("String() = %q, want %q", tc.id.String(), tc.s)
		}
		b, _ := tc.id.MarshalText()
		var back TenantShardID
		if err := back.UnmarshalText(b); err != nil || back != tc.id {
			t.Errorf("text round trip of %q: %+v, %v", tc.s, back, err)
		}
	}
	bad := []string{"", exampleTenant[:31], exampleTenant + "x", exampleTenant + "-0000", exampleTenant + "-0a0a", exampleTenant + "-070", exampleTenant + "-07zz", "zz" + exampleTenant[2:]}
	for _, s := range bad {
		if _, err := ParseTenantShardID(s); err == nil || !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want an error", s, err)
		}
	}
	// Upper-case input is accepted; output is canonical lower-case.
	if got, err := ParseTenantShardID("1F359DD625E519A1A4E8D7509690F6FC-070A"); err != nil || got.String() != exampleTenant+"-070a" {
		t.Errorf("upper-case parse = %v, %v", got, err)
	}
	tl, err := ParseTimelineID("00000000000000000000000000000001")
	if err != nil || tl[15] != 1 || tl.String() != "00000000000000000000000000000001" {
		t.Errorf("timeline id = %v, %v", tl, err)
	}
}

func TestShardIndexText(t *testing.T) {
	i, err := ParseShardIndex("0104")
	if err != nil || i != (ShardIndex{Number: 1, Count: 4}) || i.String() != "0104" {
		t.Fatalf("ParseShardIndex = %+v, %v", i, err)
	}
	for _, s := range []string{"104", "0400", "zz04", "01040"} {
		if _, err := ParseShardIndex(s); err == nil {
			t.Errorf("ParseShardIndex(%q) accepted", s)
		}
	}
}

func TestSplitChildren(t *testing.T) {
	tests := []struct {
		parent   ShardIndex
		newCount ShardCount
		want     []string
	}{
		{ShardIndex{0, 1}, 2, []string{"0002", "0102"}},
		{ShardIndex{0, 0}, 2, []string{"0002", "0102"}},
		{ShardIndex{1, 2}, 8, []string{"0108", "0308", "0508", "0708"}},
		{ShardIndex{0, 4}, 8, []string{"0008", "0408"}},
	}
	for _, tc := range tests {
		got, err := tc.parent.SplitChildren(tc.newCount)
		if err != nil {
			t.Fatalf("%v → %d: %v", tc.parent, tc.newCount, err)
		}
		var s []string
		for _, c := range got {
			s = append(s, c.String())
		}
		if !reflect.DeepEqual(s, tc.want) {
			t.Errorf("%v → %d = %v, want %v", tc.parent, tc.newCount, s, tc.want)
		}
	}
	for _, nc := range []ShardCount{1, 2, 3} {
		if _, err := (ShardIndex{0, 2}).SplitChildren(nc); !errors.Is(err, ErrInvalid) {
			t.Errorf("split 2 → %d = %v, want ErrInvalid", nc, err)
		}
	}
	tid, _ := ParseTenantID(exampleTenant)
	kids, err := TenantShardID{tid, ShardIndex{0, 1}}.SplitChildren(2)
	if err != nil || len(kids) != 2 || kids[1].String() != exampleTenant+"-0102" {
		t.Fatalf("TenantShardID split = %v, %v", kids, err)
	}
}

// TestSplitChildrenPartitionKeys checks the property shard split relies on:
// the keys a child owns are among the keys its parent owned — for counts
// 1 → 2 → 4 with the same stripe. (Neon's mapping hashes modulo count, so
// this only holds because child c of parent n has c % old == n and
// h % new % old == h % old when old divides new.)
func TestSplitChildrenPartitionKeys(t *testing.T) {
	rel := keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}
	for blk := uint32(0); blk < 500; blk++ {
		k := keys.RelBlockKey(rel, blk)
		p := KeyToShard(k, 2, 8)
		c := KeyToShard(k, 4, 8)
		kids, _ := ShardIndex{p, 2}.SplitChildren(4)
		found := false
		for _, kid := range kids {
			found = found || kid.Number == c
		}
		if !found {
			t.Fatalf("block %d: child shard %d is not a child of parent %d", blk, c, p)
		}
	}
}

func FuzzParseTenantShardID(f *testing.F) {
	f.Add(exampleTenant + "-070a")
	f.Add(exampleTenant)
	f.Add("x")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseTenantShardID(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("unclassified %v", err)
			}
			return
		}
		again, err := ParseTenantShardID(id.String())
		if err != nil || again != id {
			t.Fatalf("reparse of %q: %v, %v", id.String(), again, err)
		}
	})
}
