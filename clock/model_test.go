package clock_test

import (
	"context"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/stratadb/strata/clock"
)

// TestChanSelectModel drives two Chans through random non-blocking
// operations (including TrySelect over mixed cases) and compares every
// result with a model of two bounded FIFO queues and Select's first-ready
// rule.
func TestChanSelectModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := clock.NewReal()
		caps := [2]int{rapid.IntRange(1, 20).Draw(t, "capA"), rapid.IntRange(1, 4).Draw(t, "capB")}
		chans := [2]*clock.Chan[int]{clock.NewChan[int](c, caps[0]), clock.NewChan[int](c, caps[1])}
		var model [2][]int
		var closed [2]bool
		next := 0
		pick := func(t *rapid.T) int { return rapid.IntRange(0, 1).Draw(t, "chan") }

		t.Repeat(map[string]func(*rapid.T){
			"": func(t *rapid.T) {
				for i := range chans {
					if chans[i].Len() != len(model[i]) {
						t.Fatalf("chan %d Len %d, model %d", i, chans[i].Len(), len(model[i]))
					}
				}
			},
			"TrySend": func(t *rapid.T) {
				i := pick(t)
				if closed[i] {
					t.Skip("send on closed panics")
				}
				next++
				want := len(model[i]) < caps[i]
				if got := chans[i].TrySend(next); got != want {
					t.Fatalf("TrySend = %v, want %v", got, want)
				}
				if want {
					model[i] = append(model[i], next)
				}
			},
			"TryRecv": func(t *rapid.T) {
				i := pick(t)
				v, ok, ready := chans[i].TryRecv()
				switch {
				case len(model[i]) > 0:
					if !ok || !ready || v != model[i][0] {
						t.Fatalf("TryRecv = %v,%v,%v, want %v,true,true", v, ok, ready, model[i][0])
					}
					model[i] = model[i][1:]
				case closed[i]:
					if ok || !ready {
						t.Fatalf("TryRecv on closed drained = ok %v ready %v", ok, ready)
					}
				default:
					if ready {
						t.Fatalf("TryRecv on empty open Chan reported ready")
					}
				}
			},
			"Close": func(t *rapid.T) {
				i := pick(t)
				if closed[i] {
					t.Skip("double close panics")
				}
				chans[i].Close()
				closed[i] = true
			},
			"TrySelect": func(t *rapid.T) {
				// A random list of cases: recv from either, send to either
				// (only to open chans), done on a cancelled or live ctx, or
				// a zero Case.
				n := rapid.IntRange(1, 4).Draw(t, "ncases")
				cancelled, cancel := clock.WithCancel(context.Background())
				cancel()
				var cases []clock.Case
				var got int
				var gotOK bool
				type spec struct {
					kind string
					ch   int
					v    int
				}
				var specs []spec
				for range n {
					kind := rapid.SampledFrom([]string{"recv", "send", "done", "live", "zero"}).Draw(t, "kind")
					ch := pick(t)
					switch kind {
					case "recv":
						cases = append(cases, chans[ch].RecvCaseOK(&got, &gotOK))
					case "send":
						if closed[ch] {
							kind = "zero"
							cases = append(cases, clock.Case{})
							break
						}
						next++
						cases = append(cases, chans[ch].SendCase(next))
					case "done":
						cases = append(cases, clock.DoneCase(cancelled))
					case "live":
						cases = append(cases, clock.DoneCase(context.Background()))
					case "zero":
						cases = append(cases, clock.Case{})
					}
					specs = append(specs, spec{kind, ch, next})
				}
				want := -1
				for k, s := range specs {
					ready := false
					switch s.kind {
					case "recv":
						ready = len(model[s.ch]) > 0 || closed[s.ch]
					case "send":
						ready = len(model[s.ch]) < caps[s.ch]
					case "done":
						ready = true
					}
					if ready {
						want = k
						break
					}
				}
				if i := clock.TrySelect(cases...); i != want {
					t.Fatalf("TrySelect = %d, want %d (first ready) for %v", i, want, specs)
				}
				if want < 0 {
					return
				}
				switch s := specs[want]; s.kind {
				case "recv":
					if len(model[s.ch]) > 0 {
						if !gotOK || got != model[s.ch][0] {
							t.Fatalf("recv case got %v,%v want %v", got, gotOK, model[s.ch][0])
						}
						model[s.ch] = model[s.ch][1:]
					} else if gotOK {
						t.Fatalf("recv case on closed drained chan reported ok")
					}
				case "send":
					model[s.ch] = append(model[s.ch], s.v)
				}
			},
		})
		for i := range chans {
			var drained []int
			for {
				v, ok, ready := chans[i].TryRecv()
				if !ok || !ready {
					break
				}
				drained = append(drained, v)
			}
			if !slices.Equal(drained, model[i]) {
				t.Fatalf("chan %d drained %v, model %v", i, drained, model[i])
			}
		}
	})
}
