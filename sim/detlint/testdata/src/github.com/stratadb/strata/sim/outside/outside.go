// Package outside is outside engine/ and nodes/, so nothing is reported.
package outside

import (
	"math/rand/v2"
	"os"
	"time"
)

var Counter int

func Run(m map[string]int) {
	go func() {}()
	c := make(chan int)
	select {
	case <-c:
	default:
	}
	_ = time.Now()
	_ = rand.IntN(3)
	_, _ = os.Open("x")
	for range m {
	}
}
