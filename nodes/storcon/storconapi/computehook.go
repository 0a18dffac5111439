package storconapi

import "github.com/stratadb/strata/engine/shard"

// NotifyAttachShard names where one shard is attached.
type NotifyAttachShard struct {
	NodeID      uint64            `json:"node_id"`
	ShardNumber shard.ShardNumber `json:"shard_number"`
}

// NotifyAttachRequest is the body of PUT <compute-hook-url>/notify-attach,
// sent with "Authorization: Bearer <token>" once every shard of the
// tenant's current count has an attached node. StripeSize is null for an
// unsharded tenant; PreferredAZ null when unset.
type NotifyAttachRequest struct {
	TenantID    shard.TenantID      `json:"tenant_id"`
	PreferredAZ *string             `json:"preferred_az"`
	StripeSize  *uint32             `json:"stripe_size"`
	Shards      []NotifyAttachShard `json:"shards"`
}
