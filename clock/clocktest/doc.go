// Package clocktest is the conformance suite for clock.Clock
// implementations. Run(t, h) exercises the five Clock methods and every
// blocking primitive of package clock built on them (Chan, Select, contexts,
// Sleep, timers, Mutex, Cond, WaitGroup, Semaphore, Group) through a Harness
// that runs each test body as a task of the implementation under test.
//
// The same bodies run against the real clock (each in a goroutine, real
// time) and against the simulator (each as a scheduled task, virtual time),
// so they obey the simulator's rules: they block only through package
// clock, use only contexts made by package clock (plus Background), never
// call t.Fatal/FailNow (a body may not run on the test goroutine; they use
// t.Errorf and return), join every task they start before returning, and
// assert only lower bounds on elapsed time, never upper ones.
//
// Contract points the simulator must honour, each checked here: AfterFunc
// callbacks run in deadline order with ties in registration order; d <= 0
// never runs synchronously; AfterFunc may be called from inside a callback;
// Waiter permits (Wake before Wait) are not lost; Mono never goes backwards.
package clocktest
