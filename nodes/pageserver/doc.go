// Package pageserver is the pageserver node: it ingests committed WAL into
// timelines (engine/timeline) and serves pages at any LSN through the page
// service (pageapi, Neon's page_api over the net seam).
//
// Its parts (docs/pageserver.md describes them): the tenant manager
// (tenants.go: tenant shards with their location configs, attachment modes
// and generations, persisted crash-safely), the management API on a
// transport-independent router (mgmt.go), the page service (page_service.go
// and page_service_meta.go: page_api over the net seam, over timelines a
// Resolver hands it), a WAL receiver per attached timeline (walreceiver.go,
// with a pure safekeeper selector), background work per timeline
// (background.go: flush, compaction, GC with leases and the PITR window),
// the task registry every task belongs to (tasks.go), which shutdown of
// a timeline, a tenant or the node goes through, and, with an object store
// in its Env, remote storage (remote.go: an upload queue per timeline in
// upload_queue.go, generation validation in remote_validate.go, the
// persisted deletion queue in deletion_queue.go, attach from object storage
// in remote_attach.go).
//
// Invariants:
//   - A page is answered only by the shard that owns its key (a block of
//     another shard is INVALID_REQUEST naming the owner), and only at an LSN
//     the timeline has ingested: a read above last_record_lsn waits for ingest
//     (bounded by Config.WaitLSNTimeout) and is never answered early.
//   - A read below the GC cutoff is refused, never answered from what GC left.
//   - With remote storage: a layer reaches object storage before any index
//     naming it; an object is deleted only after an uploaded index stopped
//     naming it and its generation validated; remote_consistent_lsn is
//     reported only for a generation validated after the upload; a shard
//     attaches with all its timelines or none.
//   - Responses on a GetPages stream come back in request order; a
//     per-request failure travels inside its response, and only the codes
//     pageapi.ResponseStatus lists end a stream.
package pageserver
