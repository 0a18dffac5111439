// Package nettest is the conformance suite for net.Network implementations,
// in the style of testing/fstest: an implementation supplies a Harness and
// calls Run, and every implementation (net/grpcx over loopback, the
// simulator's in-memory network under the real clock or its scheduler)
// runs the same cases unchanged.
//
// Invariants the suite relies on, so that a deterministic scheduler can host
// it: test bodies block only through the clock seam (Clock.NewWaiter,
// Clock.AfterFunc, tasks started with Clock.Go) and the Network under test;
// they never call t.Fatal/t.FailNow (which would end the wrong goroutine)
// but report with t.Errorf and return; every wait has a bound, so a broken
// implementation fails a case instead of hanging the test binary.
package nettest
