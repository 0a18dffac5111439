package pageserver

import (
	"context"
	"fmt"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
)

// lsnNotifier publishes a timeline's last ingested LSN to readers that wait
// for it. Ingest calls Advance after each record (or batch); readers call
// Wait. It is the one place a read learns that ingest has caught up.
type lsnNotifier struct {
	mu   *clock.Mutex
	cond *clock.Cond
	last lsn.LSN
	// closed is set by Close: waits fail at once with err.
	closed error
}

func newLSNNotifier(clk clock.Clock, start lsn.LSN) *lsnNotifier {
	mu := clock.NewMutex(clk)
	return &lsnNotifier{mu: mu, cond: clock.NewCond(mu), last: start}
}

// Advance records that everything up to l is ingested. It never moves the
// LSN backwards.
func (n *lsnNotifier) Advance(l lsn.LSN) {
	_ = n.mu.Lock(context.Background())
	if l > n.last {
		n.last = l
		n.cond.Broadcast()
	}
	n.mu.Unlock()
}

// Last returns the last ingested LSN.
func (n *lsnNotifier) Last() lsn.LSN {
	_ = n.mu.Lock(context.Background())
	defer n.mu.Unlock()
	return n.last
}

// Close fails every current and future Wait with err (shutdown).
func (n *lsnNotifier) Close(err error) {
	_ = n.mu.Lock(context.Background())
	n.closed = err
	n.cond.Broadcast()
	n.mu.Unlock()
}

// Wait returns once everything up to l is ingested, or ctx's error, or the
// error the notifier was closed with.
func (n *lsnNotifier) Wait(ctx context.Context, l lsn.LSN) error {
	if err := n.mu.Lock(ctx); err != nil {
		return err
	}
	defer n.mu.Unlock()
	for n.last < l {
		if n.closed != nil {
			return n.closed
		}
		if err := n.cond.Wait(ctx); err != nil {
			return fmt.Errorf("waiting for LSN %s (ingested %s): %w", l, n.last, err)
		}
	}
	return nil
}
