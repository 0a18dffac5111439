package pageserver

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	clk      clock.Clock
	ident    shard.ShardIdentity
	tl       *timeline.Timeline
	ingested *lsnNotifier

	// horizonBytes is the GC horizon (tenant_conf gc_horizon).
	horizonBytes uint64
	// leaseLength is how long a LeaseLsn lease lasts.
	leaseLength time.Duration
	leases      leaseSet
	// history samples last_record_lsn over time for the PITR window.
	history lsnHistory
	// gcMu makes "read the leases, raise the cutoff" (GC) and "grant a
	// lease, check it against the cutoff" (LeaseLsn) exclusive: otherwise a
	// GC that read the leases before a grant could raise the cutoff past
	// an LSN just leased.
	gcMu *clock.Mutex
	// remote is the timeline's upload queue (nil without remote storage).
	remote *uploadQueue
	// fromSplit: the shard was made by a split (for the planted bug
	// Bugs.ChildServesUnownedKey).
	fromSplit bool
}

// remoteConsistentLSN is what the timeline reports as
// remote_consistent_lsn: uploaded under a generation that validated since
// (0 without remote storage).
func (s *shardTimeline) remoteConsistentLSN() lsn.LSN {
	if s.remote == nil {
		return 0
	}
	return s.remote.remoteConsistentLSN()
}

var _ Timeline = (*shardTimeline)(nil)

func newShardTimeline(clk clock.Clock, ident shard.ShardIdentity, tl *timeline.Timeline, horizonBytes uint64) *shardTimeline {
	return &shardTimeline{clk: clk, ident: ident, tl: tl, ingested: newLSNNotifier(clk, tl.LastRecordLSN()),
		horizonBytes: horizonBytes, leaseLength: DefaultLSNLeaseLength, gcMu: clock.NewMutex(clk)}
}

// Lease keeps what reads at l need from GC for the timeline's lease length.
// A lease at 0 or below the GC cutoff fails (timeline.ErrBelowGCCutoff).
// It returns how long the lease lasts.
func (s *shardTimeline) Lease(ctx context.Context, l lsn.LSN) (time.Duration, error) {
	d := s.leaseLength
	if l == lsn.Invalid {
		return 0, fmt.Errorf("%w: lease at LSN 0", timeline.ErrBelowGCCutoff)
	}
	if err := s.gcMu.Lock(ctx); err != nil {
		return 0, err
	}
	defer s.gcMu.Unlock()
	if cutoff := s.tl.GCCutoff(); l < cutoff {
		return 0, fmt.Errorf("%w: lease at %s, cutoff %s", timeline.ErrBelowGCCutoff, l, cutoff)
	}
	now := s.clk.Mono()
	if err := s.leases.grant(l, now, now+d); err != nil {
		return 0, err
	}
	return d, nil
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
// ingested: reads at its LSN are answerable. A shard stores only the keys
// it owns (and the global ones): a record for another shard's key is
// ingested as an empty logical message, which moves last_record_lsn
// without storing anything.
func (s *shardTimeline) Ingest(at lsn.LSN, rec walrec.Record) error {
	if s.ident.Count >= 2 {
		for _, kv := range walrec.Decompose(rec) {
			if !s.ident.IsKeyLocal(kv.Key) {
				rec = walrec.LogicalMessage{}
				break
			}
		}
	}
	err := s.tl.Ingest(at, rec)
	if err == nil || errors.Is(err, timeline.ErrFlushFailed) {
		s.ingested.Advance(at)
	}
	return err
}

// shutdown fails current and future waits for ingest with ErrShuttingDown.
func (s *shardTimeline) shutdown() { s.ingested.Close(ErrShuttingDown) }
