package pageapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
)

// The request metadata every page service call carries.
const (
	// HeaderTenantID: the tenant, 32 hex digits.
	HeaderTenantID = "neon-tenant-id"
	// HeaderTimelineID: the timeline, 32 hex digits.
	HeaderTimelineID = "neon-timeline-id"
	// HeaderShardID: the shard index `nncc` in lower-case hex; "0000" for
	// an unsharded tenant.
	HeaderShardID = "neon-shard-id"
	// HeaderAuthorization: "Bearer <JWT>" when the pageserver checks tokens.
	HeaderAuthorization = "authorization"
)

// ErrBadHeader is wrapped by ParseHeaders' errors.
var ErrBadHeader = errors.New("pageapi: bad request metadata")

// Target is what a call is addressed to.
type Target struct {
	Shard    shard.TenantShardID
	Timeline shard.TimelineID
}

// WithTarget returns ctx carrying the metadata that addresses t, and the
// bearer token when token is not empty. Clients call it once per call (or
// stream).
func WithTarget(ctx context.Context, t Target, token string) context.Context {
	kv := []string{
		HeaderTenantID, t.Shard.TenantID.String(),
		HeaderTimelineID, t.Timeline.String(),
		HeaderShardID, t.Shard.Shard.String(),
	}
	if token != "" {
		kv = append(kv, HeaderAuthorization, "Bearer "+token)
	}
	return net.WithMetadata(ctx, kv...)
}

// ParseTarget reads and validates the three addressing headers. A missing
// or malformed one is an error wrapping ErrBadHeader that names it (the
// service answers InvalidArgument).
func ParseTarget(md net.Metadata) (Target, error) {
	var t Target
	get := func(h string) (string, error) {
		v, ok := md.Get(h)
		if !ok || v == "" {
			return "", fmt.Errorf("%w: missing %s", ErrBadHeader, h)
		}
		return v, nil
	}
	v, err := get(HeaderTenantID)
	if err != nil {
		return t, err
	}
	if t.Shard.TenantID, err = shard.ParseTenantID(v); err != nil {
		return t, fmt.Errorf("%w: %s: %v", ErrBadHeader, HeaderTenantID, err)
	}
	if v, err = get(HeaderTimelineID); err != nil {
		return t, err
	}
	if t.Timeline, err = shard.ParseTimelineID(v); err != nil {
		return t, fmt.Errorf("%w: %s: %v", ErrBadHeader, HeaderTimelineID, err)
	}
	if v, err = get(HeaderShardID); err != nil {
		return t, err
	}
	if t.Shard.Shard, err = shard.ParseShardIndex(v); err != nil {
		return t, fmt.Errorf("%w: %s: %v", ErrBadHeader, HeaderShardID, err)
	}
	return t, nil
}
