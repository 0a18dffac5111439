package storconapi

import (
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// ReAttachRequest is the body of POST /upcall/v1/re-attach, sent by a
// pageserver at start-up before it serves anything. Register, if set,
// registers the node first. EmptyLocalDisk says the node lost its disk.
type ReAttachRequest struct {
	NodeID         uint64               `json:"node_id"`
	Register       *NodeRegisterRequest `json:"register,omitempty"`
	EmptyLocalDisk bool                 `json:"empty_local_disk,omitempty"`
}

// ReAttachTenant is one shard the node must hold: attached shards as
// AttachedSingle with their new generation, secondaries as Secondary with
// Gen nil. The pageserver drops every local shard not listed.
type ReAttachTenant struct {
	ID         shard.TenantShardID  `json:"id"`
	Gen        *uint32              `json:"gen"`
	Mode       pageapi.LocationMode `json:"mode"`
	StripeSize uint32               `json:"stripe_size"`
}

// ReAttachResponse answers re-attach.
type ReAttachResponse struct {
	Tenants []ReAttachTenant `json:"tenants"`
}

// ValidateTenant is one (shard, generation) pair to validate.
type ValidateTenant struct {
	ID  shard.TenantShardID `json:"id"`
	Gen uint32              `json:"gen"`
}

// ValidateRequest is the body of POST /upcall/v1/validate.
type ValidateRequest struct {
	Tenants []ValidateTenant `json:"tenants"`
}

// ValidateResponseTenant says whether a generation is still the shard's
// latest. Neon omits shards it does not know; a caller treats an omission
// as invalid.
type ValidateResponseTenant struct {
	ID    shard.TenantShardID `json:"id"`
	Valid bool                `json:"valid"`
}

// ValidateResponse answers validate.
type ValidateResponse struct {
	Tenants []ValidateResponseTenant `json:"tenants"`
}

// MaxValidateTenants bounds one validate request's list.
const MaxValidateTenants = 10_000
