package pageserver

import "github.com/stratadb/strata/engine/timeline"

// Bugs are deliberate defects the simulator plants to prove its checkers
// can fail (the pageserver scenario's planted bugs). Production code always
// passes the zero value.
type Bugs struct {
	// NoWaitForIngest: a read above the last ingested LSN is answered at
	// once from what is there instead of waiting for ingest.
	NoWaitForIngest bool
	// ResumeWrongLSN: a WAL receiver that (re)connects resumes at the
	// safekeeper's commit LSN instead of where ingest stands, skipping WAL.
	ResumeWrongLSN bool
	// ServeOtherShards: the page service answers blocks its shard does not
	// own (from whatever that shard's timeline holds for them).
	ServeOtherShards bool
	// RouteWithParentStripe: a request addressed to a split parent is
	// routed to the children by the parent's stripe size instead of the
	// children's (route.go), which differ when the split changed the
	// stripe.
	RouteWithParentStripe bool
	// ChildServesUnownedKey: a shard made by a split answers blocks it
	// does not own, from the parent's layers it started with (stale once
	// the owner has ingested later writes), directly or when routed to.
	ChildServesUnownedKey bool
	// DeleteWithoutValidation: the deletion queue writes each list as
	// validated at once and executes it without asking the controller
	// whether the generation is still current (a stale attachment then
	// deletes objects the new owner's index names).
	DeleteWithoutValidation bool
	// IndexBeforeLayers: a layer upload counts as done (and the index
	// naming it may go out) when its Put starts, not when it succeeded;
	// the Put finishes in the background.
	IndexBeforeLayers bool
	// LoadIndexAboveGeneration: attach loads the newest index of the
	// timeline whatever its generation, instead of the newest at or below
	// its own.
	LoadIndexAboveGeneration bool
	// StaleUploads: an AttachedStale location keeps uploading.
	StaleUploads bool
	// Engine are the page engine's own planted bugs, passed to every
	// tenant it opens (they belong to engine/timeline, which honours them).
	Engine timeline.Bugs
}
