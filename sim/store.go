package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/sim/simdisk"
)

// Store is the world's shared object store: objstore.Local on its own
// simulated disk (which never crashes: object storage is the durable source
// of truth), wrapped by objstore.Faulty so scenarios can inject latency,
// throttling and transient errors before or after an operation took effect.
// Every node's Env.Store is this store. It is created on first use.
func (w *World) Store() *objstore.Faulty {
	if w.faultyStore == nil {
		w.storeDisk = simdisk.New(simdisk.Options{})
		local, err := objstore.NewLocal(w.storeDisk, "objects", objstore.LocalOptions{Now: w.root.clock.Now})
		if err != nil {
			panic(fmt.Sprintf("sim: object store: %v", err))
		}
		f, err := objstore.NewFaulty(local, objstore.FaultConfig{}, w.NewRand("objstore"), w.sleepCtx)
		if err != nil {
			panic(fmt.Sprintf("sim: object store: %v", err))
		}
		w.faultyStore = f
		w.store = f
	}
	return w.faultyStore
}

// SetStoreFaults sets the object store's fault rates (zero heals them).
func (w *World) SetStoreFaults(cfg objstore.FaultConfig) error {
	return w.Store().SetConfig(cfg)
}

// sleepCtx parks the calling task for d of virtual time or until ctx ends.
func (w *World) sleepCtx(ctx context.Context, d time.Duration) error {
	t := w.current
	if t == nil {
		return ErrNotInTask
	}
	return clock.Sleep(ctx, t.inc.clock, d)
}
