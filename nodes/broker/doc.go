// Package broker is the small publish/subscribe service through which
// safekeepers share per-timeline state (term, flush/commit/backup LSNs,
// connection string) with each other and with pageservers.
//
// State lives only in memory: every safekeeper republishes its timelines
// periodically, so a restarted broker is whole again after one publish
// interval. Entries not refreshed within Config.EntryTTL are dropped, which
// is how a dead safekeeper disappears. Subscribers receive each matching
// entry once and then every update; a subscriber that falls more than
// Config.MaxSubscriberLag updates behind is disconnected rather than
// allowed to grow a queue without bound.
package broker
