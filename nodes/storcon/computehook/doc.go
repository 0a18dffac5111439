// Package computehook tells compute where a tenant's shards are attached:
// the storage controller's notify-attach call (PUT <hook>/notify-attach with
// storconapi.NotifyAttachRequest, "Authorization: Bearer <token>"), and the
// other end of it, Receiver, for tests and the simulator.
//
// The controller decides when to notify (only once every shard of the
// tenant's current count has an attached node) and calls Notifier.Notify;
// this package decides how:
//
//   - An identical request for the same tenant after one that succeeded is
//     not sent again (Notify returns nil at once). A failed send forgets
//     what was last sent, so the next request goes out even if it equals an
//     older success: after a failure compute's state is unknown.
//   - Each attempt is bounded by Config.Timeout on the clock seam.
//   - 429 (busy) waits Config.BusyWait, then retries; 5xx, an unreachable
//     hook and timeouts retry with a back-off that doubles from
//     Config.RetryBackoff up to MaxRetryBackoff. Every retry, whatever its
//     cause, counts against Config.MaxRetries.
//   - 404 and every other 4xx are fatal for this round: no retry, and the
//     error wraps ErrFatal. The controller keeps its pending flag and a
//     later reconcile tries again.
//   - Calls for one tenant are serialized (a clock.Mutex per tenant), so
//     concurrent reconciles never send two notifications for one tenant at
//     once and the last one sent is the one recorded; calls for different
//     tenants run in parallel.
//
// Status classes are read from the HTTP status when the client has one
// (httpx.Client) and from the error's net.Code otherwise (the seam, where
// 429 arrives as ResourceExhausted and 404 as NotFound).
//
// Like everything under nodes/, the package uses only the clock and net
// seams: no goroutines, no real time, so it runs unchanged in the
// simulator.
package computehook
