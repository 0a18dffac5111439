package net

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Metadata is a call's request headers (gRPC metadata; HTTP headers for the
// control plane's adapters): a small set of lower-case ASCII keys, one value
// each. The page service reads the tenant, timeline and shard a request is
// for, and its bearer token, from here (docs/neon-compat.md, Page service).
//
// A client attaches metadata to a call's context with WithMetadata; the
// handler of a unary call or a stream reads it with IncomingMetadata. Every
// transport carries it unchanged and validates it the same way: keys match
// [a-z0-9-_.]+, do not start with "grpc-" or "strata-" (reserved for the
// transports), values are printable ASCII, and the whole set stays within
// MaxMetadataEntries and MaxMetadataBytes. A call whose metadata breaks these
// rules fails InvalidArgument before anything is sent.
type Metadata map[string]string

// Limits on one call's metadata.
const (
	// MaxMetadataEntries bounds the number of keys.
	MaxMetadataEntries = 32
	// MaxMetadataBytes bounds the sum of key and value lengths (gRPC's
	// default header list limit is 16 KiB; this leaves room for its own).
	MaxMetadataBytes = 8 << 10
)

type outgoingKey struct{}
type incomingKey struct{}

// WithMetadata returns a context whose calls carry kv (key, value pairs) in
// addition to any metadata ctx already carries; a repeated key takes the
// later value. It panics on an odd number of arguments, a programming error.
func WithMetadata(ctx context.Context, kv ...string) context.Context {
	if len(kv)%2 != 0 {
		panic("net: WithMetadata needs key, value pairs")
	}
	old, _ := ctx.Value(outgoingKey{}).(Metadata)
	md := make(Metadata, len(old)+len(kv)/2)
	for _, k := range slices.Sorted(maps.Keys(old)) {
		md[k] = old[k]
	}
	for i := 0; i < len(kv); i += 2 {
		md[strings.ToLower(kv[i])] = kv[i+1]
	}
	return context.WithValue(ctx, outgoingKey{}, md)
}

// OutgoingMetadata returns a copy of the metadata calls made with ctx carry
// (nil if none). Transports call it; services use WithMetadata.
func OutgoingMetadata(ctx context.Context) Metadata {
	md, _ := ctx.Value(outgoingKey{}).(Metadata)
	return md.Clone()
}

// IncomingMetadata returns the metadata the caller attached to the call
// being served (an empty map if none). The result is the handler's own copy.
func IncomingMetadata(ctx context.Context) Metadata {
	md, _ := ctx.Value(incomingKey{}).(Metadata)
	if md == nil {
		return Metadata{}
	}
	return md.Clone()
}

// NewIncomingContext returns ctx carrying md as the served call's metadata.
// Transports call it before running a handler.
func NewIncomingContext(ctx context.Context, md Metadata) context.Context {
	return context.WithValue(ctx, incomingKey{}, md.Clone())
}

// Get returns the value of key (lower-cased) and whether it is present.
func (md Metadata) Get(key string) (string, bool) {
	v, ok := md[strings.ToLower(key)]
	return v, ok
}

// Clone returns a copy of md (nil for nil).
func (md Metadata) Clone() Metadata {
	if md == nil {
		return nil
	}
	return maps.Clone(md)
}

// Keys returns md's keys in sorted order, so that transports that copy
// metadata do it in the same order every run.
func (md Metadata) Keys() []string { return slices.Sorted(maps.Keys(md)) }

// Validate checks md against the rules in the type's doc and returns an
// InvalidArgument *Status naming the first offending key.
func (md Metadata) Validate() error {
	if len(md) > MaxMetadataEntries {
		return Errorf(InvalidArgument, "metadata has %d keys, limit %d", len(md), MaxMetadataEntries)
	}
	size := 0
	for _, k := range md.Keys() {
		v := md[k]
		size += len(k) + len(v)
		if err := validKey(k); err != nil {
			return Errorf(InvalidArgument, "metadata key %q: %v", k, err)
		}
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return Errorf(InvalidArgument, "metadata %q: value byte %d is 0x%02x, want printable ASCII", k, i, v[i])
			}
		}
	}
	if size > MaxMetadataBytes {
		return Errorf(InvalidArgument, "metadata is %d bytes, limit %d", size, MaxMetadataBytes)
	}
	return nil
}

func validKey(k string) error {
	if k == "" {
		return fmt.Errorf("empty")
	}
	if strings.HasPrefix(k, "grpc-") || strings.HasPrefix(k, "strata-") {
		return fmt.Errorf("reserved prefix")
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("byte %d is %q, want [a-z0-9-_.]", i, c)
		}
	}
	return nil
}
