// Package storcon is the storage controller service: it decides which
// pageserver holds each tenant shard (engine/placement), issues
// generations, reconciles pageservers to its intent, tells compute where
// shards live and serves the controller's API (storconapi). See
// docs/storage-controller.md.
package storcon
