package bad

import (
	"context"
	"time"
)

func clocks(ctx context.Context) {
	start := time.Now()               // want `time.Now reads the real clock`
	_ = time.Since(start)             // want `time.Since reads the real clock`
	_ = time.Until(start)             // want `time.Until reads the real clock`
	time.Sleep(time.Millisecond)      // want `time.Sleep sleeps in real time`
	_ = time.After(time.Second)       // want `time.After arms a real timer`
	t := time.AfterFunc(0, func() {}) // want `time.AfterFunc arms a real timer`
	_ = t
	_ = time.NewTimer(time.Second)  // want `time.NewTimer arms a real timer`
	_ = time.NewTicker(time.Second) // want `time.NewTicker arms a real timer`
	_ = time.Tick(time.Second)      // want `time.Tick arms a real timer`
	now := time.Now                 // want `time.Now reads the real clock`
	_ = now

	c1, cancel1 := context.WithTimeout(ctx, time.Second)      // want `context.WithTimeout arms a real timer`
	c2, cancel2 := context.WithDeadline(ctx, start)           // want `context.WithDeadline arms a real timer`
	c3, cancel3 := context.WithCancel(ctx)                    // want `context.WithCancel may spawn a goroutine`
	c4, cancel4 := context.WithCancelCause(ctx)               // want `context.WithCancelCause`
	c5, cancel5 := context.WithTimeoutCause(ctx, 0, nil)      // want `context.WithTimeoutCause`
	c6, cancel6 := context.WithDeadlineCause(ctx, start, nil) // want `context.WithDeadlineCause`
	stop := context.AfterFunc(ctx, func() {})                 // want `context.AfterFunc runs its function on a new goroutine`
	_, _, _, _, _, _ = c1, c2, c3, c4, c5, c6
	cancel1()
	cancel2()
	cancel3()
	cancel4(nil)
	cancel5()
	cancel6()
	stop()
}
