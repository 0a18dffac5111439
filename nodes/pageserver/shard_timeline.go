package pageserver

import (
	"context"
	"errors"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/engine/walrec"
)

// shardTimeline is one attached timeline of one shard: the engine's
// timeline plus what the node adds around it — the shard identity reads are
// checked against and the notifier readers wait on for ingest.
type shardTimeline struct {
	ident    shard.ShardIdentity
	tl       *timeline.Timeline
	ingested *lsnNotifier
}

var _ Timeline = (*shardTimeline)(nil)

func newShardTimeline(clk clock.Clock, ident shard.ShardIdentity, tl *timeline.Timeline) *shardTimeline {
	return &shardTimeline{ident: ident, tl: tl, ingested: newLSNNotifier(clk, tl.LastRecordLSN())}
}

func (s *shardTimeline) Shard() shard.ShardIdentity { return s.ident }

func (s *shardTimeline) LastRecordLSN() lsn.LSN { return s.ingested.Last() }

func (s *shardTimeline) WaitLSN(ctx context.Context, l lsn.LSN) error {
	return s.ingested.Wait(ctx, l)
}

func (s *shardTimeline) AppendPage(dst []byte, key keys.Key, at lsn.LSN) ([]byte, error) {
	return s.tl.AppendPage(dst, key, at)
}

func (s *shardTimeline) RelSize(rel keys.RelTag, at lsn.LSN) (uint32, error) {
	return s.tl.RelSize(rel, at)
}

// Ingest adds one record and, once the engine holds it, tells waiting
// readers. A record the engine kept although its flush failed counts as
// ingested: reads at its LSN are answerable.
func (s *shardTimeline) Ingest(at lsn.LSN, rec walrec.Record) error {
	err := s.tl.Ingest(at, rec)
	if err == nil || errors.Is(err, timeline.ErrFlushFailed) {
		s.ingested.Advance(at)
	}
	return err
}

// shutdown fails current and future waits for ingest with ErrShuttingDown.
func (s *shardTimeline) shutdown() { s.ingested.Close(ErrShuttingDown) }
