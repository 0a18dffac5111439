// Package bad holds one example of every construct the analyzer reports.
package bad

import "sync"

func spawn(f func()) {
	go f() // want `go statement: start tasks with clock.Clock.Go`

	go func() { // want `go statement`
		f()
	}()

	var wg sync.WaitGroup
	wg.Go(f) // want `\(\*sync.WaitGroup\).Go starts a goroutine`
	wg.Wait()
}
