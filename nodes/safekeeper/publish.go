package safekeeper

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
)

// publishWarnEvery is how often a publication failure that goes on is
// logged again at warn level (the first failure of a streak always is).
const publishWarnEvery = time.Minute

// brokerProbeTenant is the tenant a safekeeper without timelines asks the
// broker about, so that a wrong broker address shows before the first
// timeline does. It can match no timeline (ids never contain '.').
const brokerProbeTenant = "."

// ErrPublishFailing is what Ready reports while broker publication has
// been failing for longer than Config.PublishFailureThreshold.
var ErrPublishFailing = errors.New("safekeeper: broker publication failing")

// ErrNotServing is what Ready reports before Start and after Stop.
var ErrNotServing = errors.New("safekeeper: not serving")

// publishHealth tracks the current streak of failed publication rounds,
// for the logs, the metric and readiness. mu guards it (no I/O under it).
type publishHealth struct {
	mu           sync.Mutex
	failures     int           // consecutive failed rounds; 0: healthy
	failingSince time.Duration // Mono at the first failure of the streak
	lastWarn     time.Duration // Mono of the last warn-level log
	lastErr      error
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
		err := sk.publishRound(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sk.notePublish(err)
	}
}

// publishRound publishes every servable timeline, stopping at the first
// failure; without timelines it asks the broker a question that matches
// nothing, so that an unreachable broker is noticed all the same.
func (sk *Safekeeper) publishRound(ctx context.Context) error {
	tls := sk.sortedTimelines()
	if len(tls) == 0 {
		_, err := sk.broker.Get(ctx, &brokerapi.TimelineFilter{TenantId: brokerProbeTenant})
		return err
	}
	for _, tl := range tls {
		s, err := tl.snapshot(ctx)
		if err != nil {
			continue // not servable: nothing to say about it
		}
		info := &brokerapi.SafekeeperTimelineInfo{SafekeeperId: sk.cfg.NodeID, TenantId: tl.key.tenant,
			TimelineId: tl.key.timeline, Term: uint64(s.Term), LastLogTerm: uint64(s.History.LastTerm()),
			FlushLsn: uint64(s.FlushLSN), CommitLsn: uint64(s.CommitLSN), BackupLsn: uint64(s.BackupLSN),
			RemoteConsistentLsn: uint64(s.RemotePin),
			LocalStartLsn:       uint64(s.StartLSN), ConnectionString: sk.advertise()}
		if err := sk.broker.Publish(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// notePublish records a round's outcome: a failure is counted
// (safekeeper_broker_publish_errors_total) and logged at warn level when a
// streak starts and then at most every publishWarnEvery; the end of a
// streak is logged once.
func (sk *Safekeeper) notePublish(err error) {
	h := &sk.publishHealth
	now := sk.env.Clock.Mono()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		if h.failures > 0 {
			sk.log.Info("broker publication recovered", "broker", sk.cfg.BrokerAddr, "failed_rounds", h.failures,
				"failed_for", (now - h.failingSince).String())
		}
		h.failures, h.lastErr = 0, nil
		return
	}
	sk.metrics.publishErrs.Inc()
	h.failures++
	h.lastErr = err
	switch {
	case h.failures == 1:
		h.failingSince, h.lastWarn = now, now
		sk.log.Warn("broker publish failed", "broker", sk.cfg.BrokerAddr, "err", err)
	case now-h.lastWarn >= publishWarnEvery:
		h.lastWarn = now
		sk.log.Warn("broker publish still failing", "broker", sk.cfg.BrokerAddr, "failed_rounds", h.failures,
			"failed_for", (now - h.failingSince).String(), "err", err)
	}
}

// Ready reports whether the safekeeper is fit to serve, for the daemon's
// /ready: ErrNotServing before Start and after Stop, ErrPublishFailing once
// broker publication has failed for longer than PublishFailureThreshold
// (peers then see this safekeeper as dead and pageservers cannot find it).
func (sk *Safekeeper) Ready() error {
	if sk.Addr() == "" {
		return ErrNotServing
	}
	if sk.broker == nil {
		return nil
	}
	h := &sk.publishHealth
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failures == 0 {
		return nil
	}
	if d := sk.env.Clock.Mono() - h.failingSince; d >= sk.cfg.PublishFailureThreshold {
		return fmt.Errorf("%w: to %s for %v (%d rounds): %v", ErrPublishFailing, sk.cfg.BrokerAddr, d, h.failures, h.lastErr)
	}
	return nil
}
