package bad

import "context"

type pipe chan int // want `channel type`

type holder struct {
	in <-chan string // want `channel type`
}

func channels(ctx context.Context, h holder) {
	c := make(chan int, 1) // want `channel type`
	c <- 1                 // want `channel send`
	v := <-c               // want `channel receive`
	_ = v
	for x := range c { // want `range over a channel`
		_ = x
	}
	p := make(pipe) // want `make of channel type`
	_ = pipe(c)     // want `conversion to channel type`
	close(p)        // want `close of a channel`

	select { // want `select statement`
	case s := <-h.in: // want `channel receive`
		_ = s
	case <-ctx.Done(): // want `channel receive`
	default:
	}
}

func param(done chan<- struct{}) {} // want `channel type`
