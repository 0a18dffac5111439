package safekeeper

import (
	"context"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
)

func (sk *Safekeeper) advertise() string {
	if sk.cfg.AdvertiseAddr != "" {
		return sk.cfg.AdvertiseAddr
	}
	return sk.Addr()
}

// publishLoop republishes every timeline's state each PublishInterval; the
// broker keeps nothing durable, so this is also how it heals after a
// restart.
func (sk *Safekeeper) publishLoop(ctx context.Context) error {
	for {
		if err := clock.Sleep(ctx, sk.env.Clock, sk.cfg.PublishInterval); err != nil {
			return err
		}
		for _, tl := range sk.sortedTimelines() {
			s, err := tl.snapshot(ctx)
			if err != nil {
				continue
			}
			info := &brokerapi.SafekeeperTimelineInfo{SafekeeperId: sk.cfg.NodeID, TenantId: tl.key.tenant,
				TimelineId: tl.key.timeline, Term: uint64(s.Term), LastLogTerm: uint64(s.History.LastTerm()),
				FlushLsn: uint64(s.FlushLSN), CommitLsn: uint64(s.CommitLSN), BackupLsn: uint64(s.BackupLSN),
				LocalStartLsn: uint64(s.StartLSN), ConnectionString: sk.advertise()}
			if err := sk.broker.Publish(ctx, info); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				sk.log.Debug("broker publish failed", "err", err)
				break
			}
		}
	}
}
