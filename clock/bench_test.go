package clock_test

import (
	"context"
	"testing"

	"github.com/stratadb/strata/clock"
)

// Run briefly: go test ./clock -run '^$' -bench . -benchtime 200ms

func BenchmarkChanTrySendTryRecv(b *testing.B) {
	c := clock.NewReal()
	ch := clock.NewChan[int](c, 64)
	for i := 0; b.Loop(); i++ {
		ch.TrySend(i)
		ch.TryRecv()
	}
}

// BenchmarkChanPingPong measures a blocking round trip between two tasks.
func BenchmarkChanPingPong(b *testing.B) {
	c := clock.NewReal()
	ctx := context.Background()
	ping := clock.NewChan[int](c, 1)
	pong := clock.NewChan[int](c, 1)
	c.Go(ctx, "ponger", func(ctx context.Context) {
		for {
			v, ok, _ := ping.Recv(ctx)
			if !ok {
				pong.Close()
				return
			}
			_ = pong.Send(ctx, v)
		}
	})
	for i := 0; b.Loop(); i++ {
		_ = ping.Send(ctx, i)
		_, _, _ = pong.Recv(ctx)
	}
	ping.Close()
	_, _, _ = pong.Recv(ctx)
}

// BenchmarkChanStream measures throughput of a producer and a consumer.
func BenchmarkChanStream(b *testing.B) {
	c := clock.NewReal()
	ctx := context.Background()
	ch := clock.NewChan[int](c, 128)
	done := clock.NewChan[struct{}](c, 1)
	c.Go(ctx, "consumer", func(ctx context.Context) {
		for {
			if _, ok, _ := ch.Recv(ctx); !ok {
				done.Close()
				return
			}
		}
	})
	for i := 0; b.Loop(); i++ {
		_ = ch.Send(ctx, i)
	}
	ch.Close()
	_, _, _ = done.Recv(ctx)
}

// BenchmarkSelectReady measures Select's fast path (a case is ready).
func BenchmarkSelectReady(b *testing.B) {
	c := clock.NewReal()
	ctx, cancel := clock.WithCancel(context.Background())
	defer cancel()
	a := clock.NewChan[int](c, 1)
	other := clock.NewChan[int](c, 1)
	var v int
	for i := 0; b.Loop(); i++ {
		a.TrySend(i)
		clock.Select(c, other.RecvCase(&v), a.RecvCase(&v), clock.DoneCase(ctx))
	}
}

// BenchmarkSelectPingPong measures a blocking round trip where both sides
// wait in a three-way Select.
func BenchmarkSelectPingPong(b *testing.B) {
	c := clock.NewReal()
	ctx, cancel := clock.WithCancel(context.Background())
	ping := clock.NewChan[int](c, 1)
	pong := clock.NewChan[int](c, 1)
	idle := clock.NewChan[int](c, 1)
	stopped := clock.NewChan[struct{}](c, 1)
	c.Go(ctx, "ponger", func(ctx context.Context) {
		defer stopped.Close()
		var v int
		for {
			if clock.Select(c, ping.RecvCase(&v), idle.RecvCase(&v), clock.DoneCase(ctx)) != 0 {
				return
			}
			if clock.Select(c, pong.SendCase(v), clock.DoneCase(ctx)) != 0 {
				return
			}
		}
	})
	var v int
	for i := 0; b.Loop(); i++ {
		clock.Select(c, ping.SendCase(i), clock.DoneCase(ctx))
		clock.Select(c, pong.RecvCase(&v), idle.RecvCase(&v), clock.DoneCase(ctx))
	}
	cancel()
	_, _, _ = stopped.Recv(context.Background())
}

func BenchmarkMutexUncontended(b *testing.B) {
	c := clock.NewReal()
	m := clock.NewMutex(c)
	ctx := context.Background()
	for b.Loop() {
		_ = m.Lock(ctx)
		m.Unlock()
	}
}

func BenchmarkWithTimeoutCancel(b *testing.B) {
	c := clock.NewReal()
	ctx := context.Background()
	for b.Loop() {
		_, cancel := clock.WithTimeout(c, ctx, 1<<40)
		cancel()
	}
}
