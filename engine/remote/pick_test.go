package remote

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/sim/simdisk"
)

func newStore(t *testing.T) *objstore.Local {
	t.Helper()
	s, err := objstore.NewLocal(simdisk.New(simdisk.Options{}), "objects", objstore.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// indexOf returns a valid index whose disk_consistent_lsn tells which
// generation uploaded it.
func indexOf(t *testing.T, g layer.Generation) []byte {
	t.Helper()
	ip := IndexPart{
		Layers:   []Layer{{LayerID{Name: delta(t, fxK0, fxKF, 0x10, 0x1000+lsnOf(g), g)}, 8192}},
		Metadata: Metadata{DiskConsistentLSN: 0x1000 + lsnOf(g), InitdbLSN: 0x10, PGVersion: 16},
	}
	data, err := Encode(&ip)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func lsnOf(g layer.Generation) lsn.LSN { return lsn.LSN(g) * 8 }

func putIndexes(t *testing.T, s objstore.Store, l Layout, gens ...layer.Generation) {
	t.Helper()
	for _, g := range gens {
		if err := s.Put(context.Background(), l.IndexKey(unsharded, testTimeline, g), indexOf(t, g), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDownloadIndexChoosesByGeneration(t *testing.T) {
	l, err := NewLayout("pfx")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		stored  []layer.Generation
		our     layer.Generation
		wantGen layer.Generation
		wantErr error
	}{
		{"own", []layer.Generation{3, 5, 7}, 5, 5, nil},
		{"previous", []layer.Generation{4, 6}, 5, 4, nil},
		{"listing", []layer.Generation{2, 6, 9}, 5, 2, nil},
		{"legacy after listing", []layer.Generation{layer.GenerationNone, 6}, 5, layer.GenerationNone, nil},
		{"legacy via fast path for 1", []layer.Generation{layer.GenerationNone, 2}, 1, layer.GenerationNone, nil},
		{"none at or below", []layer.Generation{6, 7}, 5, 0, ErrNoIndex},
		{"nothing", nil, 5, 0, objstore.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inSim(t, func(clk clock.Clock) {
				s := newStore(t)
				putIndexes(t, s, l, tc.stored...)
				r, err := NewRetrier(clk, nil, RetryConfig{})
				if err != nil {
					t.Fatal(err)
				}
				ip, g, err := DownloadIndex(context.Background(), r, s, l, unsharded, testTimeline, tc.our)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("DownloadIndex = %v, want %v", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if g != tc.wantGen || ip.Metadata.DiskConsistentLSN != 0x1000+lsnOf(tc.wantGen) {
					t.Fatalf("loaded generation %v (dcl %s), want %v", g, ip.Metadata.DiskConsistentLSN, tc.wantGen)
				}
			})
		})
	}
}

// TestDownloadIndexCorruptIsFinal: a corrupt index of our generation is an
// error; loading an older one instead would roll the timeline back.
func TestDownloadIndexCorruptIsFinal(t *testing.T) {
	inSim(t, func(clk clock.Clock) {
		s := newStore(t)
		putIndexes(t, s, Layout{}, 4)
		if err := s.Put(context.Background(), Layout{}.IndexKey(unsharded, testTimeline, 5), []byte(`{"version":15`), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		r, _ := NewRetrier(clk, nil, RetryConfig{})
		_, _, err := DownloadIndex(context.Background(), r, s, Layout{}, unsharded, testTimeline, 5)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "index_part.json-00000005") {
			t.Fatalf("DownloadIndex over a corrupt index = %v", err)
		}
	})
}

// TestDownloadIndexFailFirst: through a store whose every operation fails
// its first N attempts, the retry policy loads the index when N is within
// its retries, and gives up with an error naming the key and the attempt
// count when it is not.
func TestDownloadIndexFailFirst(t *testing.T) {
	l := Layout{}
	for _, tc := range []struct {
		n       int
		wantErr bool
	}{{0, false}, {3, false}, {10, false}, {11, true}, {20, true}} {
		inSim(t, func(clk clock.Clock) {
			inner := newStore(t)
			putIndexes(t, inner, l, 4)
			s, err := objstore.NewFailFirst(inner, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := NewRetrier(clk, nil, RetryConfig{})
			start := clk.Mono()
			ip, g, err := DownloadIndex(context.Background(), r, s, l, unsharded, testTimeline, 5)
			elapsed := clk.Mono() - start
			if tc.wantErr {
				key := l.IndexKey(unsharded, testTimeline, 5)
				if !errors.Is(err, ErrRetriesExhausted) || !errors.Is(err, objstore.ErrTransient) ||
					!strings.Contains(err.Error(), "get "+key) || !strings.Contains(err.Error(), "failed 11 attempts") {
					t.Fatalf("N=%d: DownloadIndex = %v, want retries exhausted on %s after 11 attempts", tc.n, err, key)
				}
				if s.Injected() != 11 {
					t.Errorf("N=%d: %d failures injected, want 11 (then give up)", tc.n, s.Injected())
				}
				return
			}
			if err != nil || g != 4 || len(ip.Layers) != 1 {
				t.Fatalf("N=%d: DownloadIndex = %v, %v, %v", tc.n, ip, g, err)
			}
			// Two downloads (-5: not found after its failures, -4: found),
			// each failing N times first and waiting the policy's backoff.
			if s.Injected() != 2*tc.n {
				t.Errorf("N=%d: %d failures injected, want %d", tc.n, s.Injected(), 2*tc.n)
			}
			var want time.Duration
			for i := 1; i <= tc.n; i++ {
				want += 2 * r.Config().Backoff(i)
			}
			if elapsed != want {
				t.Errorf("N=%d: took %v of virtual time, want %v", tc.n, elapsed, want)
			}
		})
	}
}
