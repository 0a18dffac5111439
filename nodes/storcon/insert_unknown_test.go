package storcon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// lostInsertStore stores an insert and then reports its outcome unknown
// (the answer lost on a broken connection), ending the caller's context
// as that broken connection ends the caller's request.
type lostInsertStore struct {
	persist.Store
	cancel *context.CancelFunc
}

func (s lostInsertStore) InsertTenantShards(ctx context.Context, rows []persist.TenantShard) error {
	if err := s.Store.InsertTenantShards(ctx, rows); err != nil || *s.cancel == nil {
		return err
	}
	(*s.cancel)()
	return errors.Join(persist.ErrUnreachable, errors.New("connection broken before the answer"))
}

// TestCreateAdoptsRowsWhoseAnswerWasLost: an insert that was stored but
// whose answer was lost, together with the caller's request, is still read
// back and adopted: memory holds the tenant the store holds, instead of
// the store keeping rows memory forgot (an inconsistency that would last
// until a restart).
func TestCreateAdoptsRowsWhoseAnswerWasLost(t *testing.T) {
	var cancel context.CancelFunc
	runClusterWith(t, 2, Config{}, func(env node.Env) persist.Store {
		ds, err := persist.OpenDisk(env.Clock, env.Disk, "ctl", persist.DiskConfig{})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		return lostInsertStore{Store: ds, cancel: &cancel}
	}, func(c *cluster) {
		tn := tenantID(91)
		ctx, cf := clock.WithCancel(c.ctx)
		cancel = cf
		// The caller is gone: what it is answered does not matter.
		_, _ = c.sc.createTenant(ctx, storconapi.TenantCreateRequest{NewTenantID: tn})
		cancel = nil
		if _, err := c.api.DescribeTenant(c.ctx, tn); err != nil {
			t.Fatalf("the tenant whose rows are stored is not in memory: %v", err)
		}
		waitFor(c, time.Minute, "consistent", func() error {
			_, err := c.api.ConsistencyCheck(c.ctx)
			return err
		})
	})
}
