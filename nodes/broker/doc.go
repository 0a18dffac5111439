// Package broker is the small publish/subscribe service through which
// safekeepers share per-timeline state (term, flush/commit/backup LSNs,
// connection string) with each other and with pageservers.
//
// State lives only in memory: every safekeeper republishes its timelines
// periodically, so a restarted broker is whole again after one publish
// interval. Entries not refreshed within Config.EntryTTL are dropped, which
// is how a dead safekeeper disappears; the table holds at most
// Config.MaxEntries. Subscribers receive each matching entry once and then
// the latest state of every entry that changed since their last batch: a
// slow subscriber skips intermediate versions, so it costs no queue.
//
// Clients import nodes/broker/brokerapi (wire messages, method names, a
// connection-caching Client), never this package.
package broker
