package clock

import "context"

// Case is one alternative of a Select. Build cases with Chan.RecvCase,
// Chan.RecvCaseOK, Chan.SendCase and DoneCase; a timer is a RecvCase on its
// C. The zero Case is never ready, like a nil channel in a Go select, which
// lets callers switch a case off without changing indices. A Case holds
// its Select's registration, so it may be reused by later Selects of the
// same task but never by two tasks at once.
type Case struct {
	op caseOp
}

// caseOp is what a Case must provide. try checks readiness and commits in
// one step under the source's own mutex, so a case is never reported ready
// and then found not ready. register subscribes w to readiness changes;
// unregister undoes it and is a no-op if not registered. A caseOp belongs
// to one Select call, so it can hold its registration itself.
type caseOp interface {
	try() bool
	register(w Waiter)
	unregister()
}

// Select blocks until one of cases is ready, commits exactly that one and
// returns its index. When several are ready the FIRST in argument order is
// chosen: there is no randomness, so a run is reproducible, and callers
// express priority by ordering (e.g. put DoneCase last to drain work first,
// or first to stop promptly). Select with no non-zero case blocks forever
// (the simulator reports it as a deadlock).
//
// Implementation: a single Waiter is registered on every case before the
// cases are re-checked, so a case becoming ready between the check and the
// Wait still wakes it; after each wake every registration is removed and the
// loop starts again.
func Select(c Clock, cases ...Case) int {
	if i := TrySelect(cases...); i >= 0 {
		return i
	}
	w := c.NewWaiter()
	unregister := func() {
		for _, cs := range cases {
			if cs.op != nil {
				cs.op.unregister()
			}
		}
	}
	defer unregister() // also when unwound inside Wait
	for {
		for _, cs := range cases {
			if cs.op != nil {
				cs.op.register(w)
			}
		}
		chosen := TrySelect(cases...)
		if chosen < 0 {
			w.Wait()
			chosen = TrySelect(cases...)
		}
		unregister()
		if chosen >= 0 {
			return chosen
		}
	}
}

// TrySelect commits the first ready case and returns its index, or -1 if no
// case is ready. It never blocks.
func TrySelect(cases ...Case) int {
	for i, cs := range cases {
		if cs.op != nil && cs.op.try() {
			return i
		}
	}
	return -1
}

// DoneCase is a Select case that is ready once ctx is done; committing it
// has no effect (read ctx.Err() afterwards). A ctx that can never be done
// (Done() == nil) gives a case that is never ready. See OnDone for which
// contexts may be used in the simulator.
func DoneCase(ctx context.Context) Case {
	if ctx == nil {
		panic("clock: DoneCase with nil Context")
	}
	return Case{op: &doneCase{ctx: ctx}}
}

type doneCase struct {
	ctx  context.Context
	stop func() bool
}

func (c *doneCase) try() bool { return c.ctx.Err() != nil }

func (c *doneCase) register(w Waiter) {
	if c.stop == nil {
		c.stop = OnDone(c.ctx, w.Wake)
	}
}

func (c *doneCase) unregister() {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
}
