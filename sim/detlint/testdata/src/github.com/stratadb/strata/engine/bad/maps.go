package bad

import (
	"maps"
	"slices"
)

func ranges(m map[string]int) int {
	n := 0
	for k, v := range m { // want `range over a map: iteration order is random`
		n += len(k) + v
	}
	for range m { // want `range over a map`
		n++
	}
	for k := range maps.Keys(m) { // want `maps.Keys yields in random order`
		n += len(k)
	}
	for _, v := range maps.All(m) { // want `maps.All yields in random order`
		n += v
	}
	vs := slices.Collect(maps.Values(m)) // want `maps.Values yields in random order`
	return n + len(vs)
}

type counts map[string]int

func named(c counts) {
	for k := range c { // want `range over a map`
		_ = k
	}
}

func generic[M ~map[string]int](m M) {
	for k := range m { // want `range over a map`
		_ = k
	}
}
