// Package good holds constructs the analyzer must accept.
package good

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net" // this module's transport seam, not the standard library's
)

// Sentinel errors are immutable by convention and allowed.
var ErrClosed = errors.New("good: closed")

var errWrapped = fmt.Errorf("good: wrapped: %w", ErrClosed)

var ErrTyped error = errors.New("good: typed")

// Blank assertions are allowed.
var _ fmt.Stringer = name("")

var _, _ = 1, 2

type name string

func (n name) String() string { return string(n) }

const limit = 10 // constants are immutable

// Service holds its seams, as a node does.
type Service struct {
	clk  clock.Clock
	net  net.Network
	rand *rand.Rand
}

func New(clk clock.Clock, n net.Network, seed uint64) *Service {
	// Constructing a seeded source is the allowed way to get randomness.
	return &Service{clk: clk, net: n, rand: rand.New(rand.NewPCG(seed, seed+1))}
}

func (s *Service) Work(ctx context.Context, m map[string]int) (int, error) {
	ctx, cancel := clock.WithTimeout(s.clk, ctx, time.Second)
	defer cancel()
	if err := clock.Sleep(ctx, s.clk, time.Millisecond); err != nil {
		return 0, err
	}
	_ = s.clk.Now() // the seam's Now, not time.Now
	_ = s.rand.IntN(limit)
	s.rand.Shuffle(3, func(i, j int) {})
	_ = uuid.NewSHA1(uuid.UUID{}, []byte("name-based"))

	conn, err := s.net.Dial(ctx, "ps-1")
	if err != nil {
		return 0, err
	}
	if _, err := conn.Call(ctx, "/x/Y", make([]byte, net.MaxMessageBytes>>20)); err != nil {
		return 0, err
	}

	ch := clock.NewChan[int](s.clk, 1)
	_ = ch.Send(ctx, 1)

	n := 0
	for _, k := range slices.Sorted(maps.Keys(m)) {
		n += m[k]
	}
	for _, v := range slices.SortedFunc(maps.Values(m), func(a, b int) int { return a - b }) {
		n += v
	}
	copyOf := maps.Collect(maps.All(m))
	maps.Insert(copyOf, maps.All(m))
	for i := range limit {
		n += i
	}
	for _, x := range []int{1, 2} {
		n += x
	}
	d := 3 * time.Second // time's types and constants are fine
	_ = d.String()
	_ = time.Unix(0, 0).UTC()

	//strata:nondeterministic reading wall time once for a log line is harmless here
	_ = time.Now()
	_ = time.Now() //strata:nondeterministic same-line escape with a reason
	return n, errWrapped
}
