// Package pageapi is the pageserver's page service API as clients see it:
// the protobuf messages of page_api.proto (proto package page_api, service
// PageService — names and field numbers match Neon's, so a client generated
// from either definition talks to a Strata pageserver) and the method names
// clients call.
//
// The page service itself (validation, shard checks, waiting for ingest,
// status mapping) belongs to the pageserver; a compute-side client imports
// only this package. docs/neon-compat.md lists the wire contract.
package pageapi
