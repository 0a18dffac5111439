package pageserver

import (
	"testing"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// TestAttachingIsUnavailable: a page request for a shard in an attached
// mode whose engine is not open yet (still loading) answers Unavailable,
// which the page client retries; a shard held here in another mode answers
// NotFound (the client's map is wrong), as it always did.
func TestAttachingIsUnavailable(t *testing.T) {
	id := shard.UnshardedID(shard.TenantID{7})
	for _, tc := range []struct {
		mode pageapi.LocationMode
		want net.Code
	}{
		{pageapi.ModeAttachedSingle, net.Unavailable},
		{pageapi.ModeAttachedMulti, net.Unavailable},
		{pageapi.ModeSecondary, net.NotFound},
	} {
		m := &tenantManager{shards: map[shard.TenantShardID]*tenantShard{id: {id: id, conf: pageapi.LocationConfig{Mode: tc.mode}}}}
		_, err := m.Resolve(pageapi.Target{Shard: id, Timeline: shard.TimelineID{1}})
		if got := net.CodeOf(StatusOf(err)); got != tc.want {
			t.Errorf("%s: %v: code %v, want %v", tc.mode, err, got, tc.want)
		}
	}
}
