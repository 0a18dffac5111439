package scenarios

import (
	"fmt"
	"sort"

	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/scenarios/cluster"
	"github.com/stratadb/strata/sim/scenarios/counter"
	"github.com/stratadb/strata/sim/scenarios/pageserver"
	"github.com/stratadb/strata/sim/scenarios/split"
	"github.com/stratadb/strata/sim/scenarios/storcon"
	"github.com/stratadb/strata/sim/scenarios/wal"
)

// All returns every registered scenario, sorted by name. To add a scenario,
// add its constructor here (see docs/simulator.md).
func All() []sim.Scenario {
	all := []sim.Scenario{
		cluster.Scenario(),
		counter.Scenario(),
		pageserver.Scenario(),
		split.Scenario(),
		storcon.Scenario(),
		wal.Scenario(),
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}

// Lookup returns the scenario with the given name.
func Lookup(name string) (sim.Scenario, error) {
	var names []string
	for _, s := range All() {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return sim.Scenario{}, fmt.Errorf("%w %q (known: %v)", ErrUnknownScenario, name, names)
}

// ErrUnknownScenario reports a scenario name that is not registered.
var ErrUnknownScenario = fmt.Errorf("sim: unknown scenario")
