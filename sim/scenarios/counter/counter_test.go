package counter

import (
	"testing"

	"github.com/stratadb/strata/sim"
)

func TestOneSeed(t *testing.T) {
	r := sim.RunSeed(Scenario(), 1, sim.RunOptions{})
	t.Logf("%+v", r)
	if !r.Passed() {
		t.Fatal(r.Failure)
	}
}
