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
// in remote_attach.go, layers downloaded on demand and in the background
// in ondemand.go, the local disk budget's eviction in eviction.go,
// heatmaps in heatmap.go and the warm copies of
// Secondary locations in secondary.go), and shard splits (split.go: a shard's children
// made on this node from hard-linked layers, committed by a marker) with
// the routing of requests still addressed to a split parent to its local
// children (route.go).
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
//   - With remote storage the local disk is a cache: a layer file is
//     evicted only once the newest index the attachment uploaded names it
//     and no read holds it; a read of a remote layer downloads it (one
//     download per layer, checked and renamed into place, never read
//     partial) or fails Unavailable.
//   - A Secondary location never serves pages (the page service answers
//     NotFound naming the mode); it only downloads what the heatmap names.
//     Only AttachedSingle and AttachedMulti upload a heatmap, never
//     AttachedStale, and a heatmap names only layers already uploaded.
//   - A shard made by a split answers only the keys it owns; a request for
//     a split (or detached) parent is answered by the child owning each key,
//     by the children's count and stripe, or fails Unavailable when the
//     children are not all here. A split is committed by the parent's
//     split.json: before it, start-up removes the children (the parent is
//     the shard); after it the children are complete and the parent never
//     serves again unless a location config re-attaches it.
//   - Responses on a GetPages stream come back in request order; a
//     per-request failure travels inside its response, and only the codes
//     pageapi.ResponseStatus lists end a stream.
package pageserver
