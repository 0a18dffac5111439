package counter

import (
	"errors"
	"strings"
	"testing"

	countersvc "github.com/stratadb/strata/nodes/counter"
	"github.com/stratadb/strata/sim"
)

// TestCheckerCatches feeds the checker histories and durable logs that
// break each invariant; a checker that cannot fail is a defect.
func TestCheckerCatches(t *testing.T) {
	hist := func() *history {
		return &history{clients: []*client{
			{id: 1, name: "client-1", incs: []*increment{{seq: 1, acked: true, value: 1}, {seq: 2}}},
			{id: 2, name: "client-2", incs: []*increment{{seq: 1, acked: true, value: 2}}},
		}}
	}
	for _, tc := range []struct {
		name string
		log  []countersvc.Record
		want error
		text string
	}{
		{"ok, ambiguous applied", []countersvc.Record{r(1, 1), r(2, 1), r(1, 2)}, nil, ""},
		{"ok, ambiguous not applied", []countersvc.Record{r(1, 1), r(2, 1)}, nil, ""},
		{"lost", []countersvc.Record{r(1, 1)}, ErrLostIncrement, "client-2#1 was acknowledged with value 2"},
		{"moved", []countersvc.Record{r(2, 1), r(1, 1)}, ErrLostIncrement, "client-1#1 was acknowledged with value 1 at 0s but the durable log holds it at position 2"},
		{"duplicate", []countersvc.Record{r(1, 1), r(2, 1), r(1, 1)}, ErrInventedIncrement, "client-1#1 counted twice"},
		{"never sent seq", []countersvc.Record{r(1, 1), r(2, 1), r(1, 3)}, ErrInventedIncrement, "client-1#3 at position 3 was never sent"},
		{"unknown client", []countersvc.Record{r(1, 1), r(2, 1), r(9, 1)}, ErrInventedIncrement, "client-9#1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := sim.New(sim.Options{Seed: 1})
			err := hist().check(w, tc.log)
			if !errors.Is(err, tc.want) || (tc.want != nil && !strings.Contains(err.Error(), tc.text)) {
				t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.text)
			}
		})
	}
}

func r(client uint32, seq uint64) countersvc.Record {
	return countersvc.Record{Client: client, Seq: seq}
}
