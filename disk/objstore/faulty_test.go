package objstore_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/disk/objstore/objstoretest"
	"github.com/stratadb/strata/sim/simdisk"
)

func newSimLocal(t *testing.T) *objstore.Local {
	return newLocal(t, simdisk.New(simdisk.Options{}), ".", objstore.LocalOptions{})
}

func newFaulty(t *testing.T, inner objstore.Store, cfg objstore.FaultConfig, seed uint64, sleep func(context.Context, time.Duration) error) *objstore.Faulty {
	t.Helper()
	f, err := objstore.NewFaulty(inner, cfg, rand.New(rand.NewPCG(seed, 0)), sleep)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFaultyNoFaultsConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return newFaulty(t, newSimLocal(t), objstore.FaultConfig{}, 1, nil)
	})
}

func TestFaultyTransientAfterTookEffect(t *testing.T) {
	ctx := context.Background()
	inner := newSimLocal(t)
	f := newFaulty(t, inner, objstore.FaultConfig{TransientAfter: 1}, 1, nil)
	err := f.Put(ctx, "k", []byte("v"), objstore.PutOptions{IfNoneMatch: true})
	objstoretest.WantClass(t, "Put with TransientAfter=1", err, objstore.ErrTransient)
	// The object exists despite the error...
	got, err := inner.Get(ctx, "k")
	if err != nil || string(got) != "v" {
		t.Fatalf("object after reported failure: %q, %v", got, err)
	}
	// ...so a retry of the conditional put meets its own success.
	if err := f.SetConfig(objstore.FaultConfig{}); err != nil {
		t.Fatal(err)
	}
	err = f.Put(ctx, "k", []byte("v"), objstore.PutOptions{IfNoneMatch: true})
	objstoretest.WantClass(t, "retried conditional Put", err, objstore.ErrPreconditionFailed)
	// Delete too takes effect before reporting failure.
	if err := f.SetConfig(objstore.FaultConfig{TransientAfter: 1}); err != nil {
		t.Fatal(err)
	}
	err = f.Delete(ctx, []string{"k"})
	objstoretest.WantClass(t, "Delete with TransientAfter=1", err, objstore.ErrTransient)
	if _, err := inner.Head(ctx, "k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Delete reported failure but did not happen: %v", err)
	}
}

func TestFaultyBeforeHasNoEffect(t *testing.T) {
	ctx := context.Background()
	inner := newSimLocal(t)
	tests := []struct {
		name  string
		cfg   objstore.FaultConfig
		class error
	}{
		{"throttle", objstore.FaultConfig{Throttle: 1}, objstore.ErrThrottled},
		{"transient before", objstore.FaultConfig{TransientBefore: 1}, objstore.ErrTransient},
	}
	for _, tc := range tests {
		f := newFaulty(t, inner, tc.cfg, 1, nil)
		err := f.Put(ctx, "k", []byte("v"), objstore.PutOptions{})
		objstoretest.WantClass(t, tc.name, err, tc.class)
		if !objstore.Retryable(err) {
			t.Fatalf("%s: error %v not retryable", tc.name, err)
		}
		if _, err := inner.Head(ctx, "k"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("%s: the operation happened: %v", tc.name, err)
		}
	}
}

func TestFaultyMissing(t *testing.T) {
	ctx := context.Background()
	inner := newSimLocal(t)
	if err := inner.Put(ctx, "k", []byte("v"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f := newFaulty(t, inner, objstore.FaultConfig{Missing: 1}, 1, nil)
	_, err := f.Get(ctx, "k")
	objstoretest.WantClass(t, "Get with Missing=1", err, objstore.ErrNotFound)
	_, err = f.Head(ctx, "k")
	objstoretest.WantClass(t, "Head with Missing=1", err, objstore.ErrNotFound)
	// Writes are unaffected.
	if err := f.Put(ctx, "k2", []byte("v"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestFaultyDeterministicAndRates(t *testing.T) {
	cfg := objstore.FaultConfig{Throttle: 0.1, TransientBefore: 0.1, TransientAfter: 0.1, LatencyMin: time.Millisecond, LatencyMax: 9 * time.Millisecond}
	run := func() (string, objstore.FaultStats, time.Duration) {
		var slept time.Duration
		sleep := func(ctx context.Context, d time.Duration) error { slept += d; return nil }
		f := newFaulty(t, newSimLocal(t), cfg, 42, sleep)
		var trace []byte
		for i := 0; i < 500; i++ {
			err := f.Put(context.Background(), "k", []byte("v"), objstore.PutOptions{})
			switch {
			case err == nil:
				trace = append(trace, '.')
			case errors.Is(err, objstore.ErrThrottled):
				trace = append(trace, 'T')
			default:
				trace = append(trace, 'E')
			}
		}
		return string(trace), f.Stats(), slept
	}
	t1, s1, d1 := run()
	t2, s2, d2 := run()
	if t1 != t2 || s1 != s2 || d1 != d2 {
		t.Fatal("same seed gave different faults")
	}
	if s1.Calls != 500 || s1.Throttled < 25 || s1.Throttled > 80 || s1.TransientBefore < 20 || s1.TransientAfter < 20 {
		t.Fatalf("fault counts %+v far from the configured rates", s1)
	}
	if d1 < 500*time.Millisecond || d1 > 500*9*time.Millisecond {
		t.Fatalf("total latency %v outside [500ms, 4.5s]", d1)
	}
}

func TestFaultyLatencyHonoursContext(t *testing.T) {
	sleep := func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	f := newFaulty(t, newSimLocal(t), objstore.FaultConfig{LatencyMin: time.Second, LatencyMax: time.Second}, 1, sleep)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := f.Put(ctx, "k", nil, objstore.PutOptions{})
	objstoretest.WantClass(t, "Put with cancelled context", err, objstore.ErrTransient)
}

func TestFaultConfigValidate(t *testing.T) {
	bad := []objstore.FaultConfig{
		{Throttle: -0.1},
		{TransientAfter: 1.5},
		{LatencyMin: 2 * time.Second, LatencyMax: time.Second},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("Validate(%+v) accepted", c)
		}
	}
	if _, err := objstore.NewFaulty(newSimLocal(t), objstore.FaultConfig{LatencyMax: time.Second}, rand.New(rand.NewPCG(1, 1)), nil); err == nil {
		t.Error("NewFaulty with latency but no sleep accepted")
	}
}
