// Package pageserver is the pageserver node: it ingests committed WAL into
// timelines (engine/timeline) and serves pages at any LSN through the page
// service (pageapi, Neon's page_api over the net seam).
//
// Built so far: the page service (page_service.go) — request validation,
// authentication, shard ownership checks, waiting for ingest, the per-request
// status mapping, bounded pipelining per stream — over the timelines a
// Resolver hands it, and the LSN notifier readers wait on (lsnwait.go). The
// tenant manager, WAL receiver, management API and daemon come with the
// pageserver issue's remaining items and plug in behind Resolver.
//
// Invariants:
//   - A page is answered only by the shard that owns its key (a block of
//     another shard is INVALID_REQUEST naming the owner), and only at an LSN
//     the timeline has ingested: a read above last_record_lsn waits for ingest
//     (bounded by Config.WaitLSNTimeout) and is never answered early.
//   - A read below the GC cutoff is refused, never answered from what GC left.
//   - Responses on a GetPages stream come back in request order; a
//     per-request failure travels inside its response, and only the codes
//     pageapi.ResponseStatus lists end a stream.
package pageserver
