package sim

import (
	"context"
	"errors"
	"testing"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/disk/objstore/objstoretest"
)

// TestStoreConformance runs the object-store suite against the store every
// node gets: objstore.Local on a simdisk, wrapped by objstore.Faulty (with
// faults off, as after HealAll).
func TestStoreConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return New(Options{Seed: 1}).Store()
	})
}

// TestStoreFaultsTookEffect: with TransientAfter the Put happens but is
// reported as failed; a conditional retry then meets its own success.
func TestStoreFaultsTookEffect(t *testing.T) {
	w := New(Options{Seed: 4})
	err := w.Run(func(w *World) error {
		ctx := context.Background()
		if err := w.SetStoreFaults(objstore.FaultConfig{TransientAfter: 1}); err != nil {
			return err
		}
		if err := w.Store().Put(ctx, "k", []byte("v"), objstore.PutOptions{IfNoneMatch: true}); !errors.Is(err, objstore.ErrTransient) {
			return errors.New("want a transient error, got " + errString(err))
		}
		w.HealAll()
		err := w.Store().Put(ctx, "k", []byte("v"), objstore.PutOptions{IfNoneMatch: true})
		if !errors.Is(err, objstore.ErrPreconditionFailed) {
			return errors.New("retry should meet the earlier success, got " + errString(err))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}
