package shard

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// IDSize is the length of a tenant or timeline id, in bytes.
const IDSize = 16

// TenantID names a tenant: 16 bytes, written as 32 lower-case hex digits.
type TenantID [IDSize]byte

// TimelineID names a timeline: 16 bytes, written as 32 lower-case hex
// digits.
type TimelineID [IDSize]byte

func parseID(kind, s string) ([IDSize]byte, error) {
	var id [IDSize]byte
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("%w: %s id %q has %d characters, want %d hex", ErrSyntax, kind, s, len(s), 2*IDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: %s id %q is not hex", ErrSyntax, kind, s)
	}
	return id, nil
}

func (t TenantID) String() string   { return hex.EncodeToString(t[:]) }
func (t TimelineID) String() string { return hex.EncodeToString(t[:]) }

// ParseTenantID parses 32 hex digits (either case).
func ParseTenantID(s string) (TenantID, error) {
	id, err := parseID("tenant", s)
	return TenantID(id), err
}

// ParseTimelineID parses 32 hex digits (either case).
func ParseTimelineID(s string) (TimelineID, error) {
	id, err := parseID("timeline", s)
	return TimelineID(id), err
}

// MarshalText implements encoding.TextMarshaler.
func (t TenantID) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *TenantID) UnmarshalText(b []byte) error {
	v, err := ParseTenantID(string(b))
	if err == nil {
		*t = v
	}
	return err
}

// MarshalText implements encoding.TextMarshaler.
func (t TimelineID) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *TimelineID) UnmarshalText(b []byte) error {
	v, err := ParseTimelineID(string(b))
	if err == nil {
		*t = v
	}
	return err
}

// ShardIndex is a shard's number and its tenant's count, written as 4 hex
// digits "<nn><cc>" (e.g. 0102 is shard 1 of 2).
type ShardIndex struct {
	Number ShardNumber
	Count  ShardCount
}

// Validate checks number < count, or number 0 for count 0.
func (i ShardIndex) Validate() error {
	if i.Count == 0 && i.Number != 0 || i.Count > 0 && uint8(i.Number) >= uint8(i.Count) {
		return fmt.Errorf("%w: shard %d of %d", ErrInvalid, i.Number, i.Count)
	}
	return nil
}

// IsUnsharded reports whether i is the legacy unsharded index (count 0).
func (i ShardIndex) IsUnsharded() bool { return i.Count == 0 }

func (i ShardIndex) String() string { return fmt.Sprintf("%02x%02x", uint8(i.Number), uint8(i.Count)) }

// ParseShardIndex parses the 4-hex-digit form.
func ParseShardIndex(s string) (ShardIndex, error) {
	if len(s) != 4 {
		return ShardIndex{}, fmt.Errorf("%w: shard index %q, want 4 hex digits <nn><cc>", ErrSyntax, s)
	}
	var b [2]byte
	if _, err := hex.Decode(b[:], []byte(s)); err != nil {
		return ShardIndex{}, fmt.Errorf("%w: shard index %q is not hex", ErrSyntax, s)
	}
	i := ShardIndex{Number: ShardNumber(b[0]), Count: ShardCount(b[1])}
	if err := i.Validate(); err != nil {
		return ShardIndex{}, err
	}
	return i, nil
}

// SplitChildren lists the children of shard i when its tenant is split
// into newCount shards: every c in 0..newCount with c % max(count,1) ==
// number. newCount must be a larger multiple of max(count,1).
func (i ShardIndex) SplitChildren(newCount ShardCount) ([]ShardIndex, error) {
	old := max(uint8(i.Count), 1)
	if uint8(newCount) <= old || uint8(newCount)%old != 0 {
		return nil, fmt.Errorf("%w: cannot split %d shards into %d (want a larger multiple)", ErrInvalid, old, newCount)
	}
	var out []ShardIndex
	for c := 0; c < int(newCount); c++ {
		if uint8(c)%old == uint8(i.Number) {
			out = append(out, ShardIndex{Number: ShardNumber(c), Count: newCount})
		}
	}
	return out, nil
}

// TenantShardID names one shard of a tenant. Text form:
// "<32 hex tenant>-<nn><cc>", or the tenant id alone when unsharded
// (count 0).
type TenantShardID struct {
	TenantID TenantID
	Shard    ShardIndex
}

// UnshardedID returns the id of a legacy unsharded tenant.
func UnshardedID(t TenantID) TenantShardID { return TenantShardID{TenantID: t} }

func (t TenantShardID) String() string {
	if t.Shard.IsUnsharded() {
		return t.TenantID.String()
	}
	return t.TenantID.String() + "-" + t.Shard.String()
}

// ParseTenantShardID parses "<tenant>" or "<tenant>-<nn><cc>".
func ParseTenantShardID(s string) (TenantShardID, error) {
	tpart, spart, sharded := strings.Cut(s, "-")
	tid, err := ParseTenantID(tpart)
	if err != nil {
		return TenantShardID{}, fmt.Errorf("tenant shard id %q: %w", s, err)
	}
	id := TenantShardID{TenantID: tid}
	if sharded {
		if id.Shard, err = ParseShardIndex(spart); err != nil {
			return TenantShardID{}, fmt.Errorf("tenant shard id %q: %w", s, err)
		}
		if id.Shard.IsUnsharded() {
			return TenantShardID{}, fmt.Errorf("%w: tenant shard id %q: an unsharded id has no suffix", ErrSyntax, s)
		}
	}
	return id, nil
}

// SplitChildren lists the ids of t's children when split into newCount.
func (t TenantShardID) SplitChildren(newCount ShardCount) ([]TenantShardID, error) {
	idx, err := t.Shard.SplitChildren(newCount)
	if err != nil {
		return nil, err
	}
	out := make([]TenantShardID, len(idx))
	for i, c := range idx {
		out[i] = TenantShardID{TenantID: t.TenantID, Shard: c}
	}
	return out, nil
}

// MarshalText implements encoding.TextMarshaler.
func (t TenantShardID) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *TenantShardID) UnmarshalText(b []byte) error {
	v, err := ParseTenantShardID(string(b))
	if err == nil {
		*t = v
	}
	return err
}

// Compare orders ids by tenant, then shard number, then count.
func (t TenantShardID) Compare(o TenantShardID) int {
	if c := strings.Compare(string(t.TenantID[:]), string(o.TenantID[:])); c != 0 {
		return c
	}
	if t.Shard.Number != o.Shard.Number {
		if t.Shard.Number < o.Shard.Number {
			return -1
		}
		return 1
	}
	if t.Shard.Count != o.Shard.Count {
		if t.Shard.Count < o.Shard.Count {
			return -1
		}
		return 1
	}
	return 0
}
