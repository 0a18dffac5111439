package safekeeper

import (
	"context"
	"sync"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/broker/brokerpb"
)

// brokerClient keeps one connection to the broker, redialled after errors.
type brokerClient struct {
	sk   *Safekeeper
	mu   sync.Mutex
	conn net.Conn
}

func (b *brokerClient) get(ctx context.Context) (net.Conn, error) {
	b.mu.Lock()
	c := b.conn
	b.mu.Unlock()
	if c != nil {
		return c, nil
	}
	ctx, cancel := clock.WithTimeout(b.sk.env.Clock, ctx, b.sk.cfg.CallTimeout)
	defer cancel()
	c, err := b.sk.env.Net.Dial(ctx, b.sk.cfg.BrokerAddr)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		_ = c.Close()
		return b.conn, nil
	}
	b.conn = c
	return c, nil
}

func (b *brokerClient) drop(c net.Conn) {
	b.mu.Lock()
	if b.conn == c {
		b.conn = nil
	}
	b.mu.Unlock()
	_ = c.Close()
}

func (b *brokerClient) publish(ctx context.Context, info *brokerpb.SafekeeperTimelineInfo) error {
	c, err := b.get(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := clock.WithTimeout(b.sk.env.Clock, ctx, b.sk.cfg.CallTimeout)
	defer cancel()
	if _, err := net.CallProto[*brokerpb.PublishResponse](ctx, c, broker.MethodPublish, info); err != nil {
		b.drop(c)
		return err
	}
	return nil
}

func (b *brokerClient) timeline(ctx context.Context, tenant, timeline string) ([]*brokerpb.SafekeeperTimelineInfo, error) {
	c, err := b.get(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := clock.WithTimeout(b.sk.env.Clock, ctx, b.sk.cfg.CallTimeout)
	defer cancel()
	resp, err := net.CallProto[*brokerpb.TimelineInfos](ctx, c, broker.MethodGet, &brokerpb.TimelineFilter{TenantId: tenant, TimelineId: timeline})
	if err != nil {
		b.drop(c)
		return nil, err
	}
	return resp.GetInfos(), nil
}

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
			info := &brokerpb.SafekeeperTimelineInfo{SafekeeperId: sk.cfg.NodeID, TenantId: tl.key.tenant,
				TimelineId: tl.key.timeline, Term: uint64(s.Term), LastLogTerm: uint64(s.History.LastTerm()),
				FlushLsn: uint64(s.FlushLSN), CommitLsn: uint64(s.CommitLSN), BackupLsn: uint64(s.BackupLSN),
				LocalStartLsn: uint64(s.StartLSN), ConnectionString: sk.advertise()}
			if err := sk.broker.publish(ctx, info); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				sk.log.Debug("broker publish failed", "err", err)
				break
			}
		}
	}
}
