package sim

import (
	"context"
	"testing"
)

// BenchmarkSchedulerEvents measures baton hand-offs: two tasks wake each
// other through the seam's Waiter, b.N times in total. Reported as events/s.
func BenchmarkSchedulerEvents(b *testing.B) {
	// Everything happens at virtual time zero, so lift the livelock guard.
	w := New(Options{Seed: 1, MaxStepsPerInstant: 1 << 62})
	b.ResetTimer()
	err := w.Run(func(w *World) error {
		c := w.Clock()
		ping, pong, done := c.NewWaiter(), c.NewWaiter(), c.NewWaiter()
		n := b.N
		c.Go(context.Background(), "pong", func(context.Context) {
			for i := 0; i < n; i++ {
				ping.Wait()
				pong.Wake()
			}
			done.Wake()
		})
		for i := 0; i < n; i++ {
			ping.Wake()
			pong.Wait()
		}
		done.Wait()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(w.Events())/b.Elapsed().Seconds(), "events/s")
}
