package pagecheck

import (
	"time"

	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/storcon"
)

// ControllerConfig is a storage controller's config for a simulated
// cluster of a few pageservers: short intervals and timeouts, so that a
// seed sees many heartbeats, reconciles and restarts in virtual time.
// dial makes the client for a pageserver's management API, hook is the
// compute hook's client.
func ControllerConfig(listen string, dial func(addr string) net.HTTPClient, hook net.HTTPClient) storcon.Config {
	return storcon.Config{
		ListenAddr:                 listen,
		DialPageserver:             dial,
		ComputeHook:                hook,
		HeartbeatInterval:          500 * time.Millisecond,
		HeartbeatTimeout:           250 * time.Millisecond,
		OfflineAfter:               3 * time.Second,
		WarmingUpTimeout:           12 * time.Second,
		LocationConfigTimeout:      2 * time.Second,
		LocationConfigBackoff:      100 * time.Millisecond,
		PageserverTimeout:          2 * time.Second,
		ReconcileAllInterval:       2 * time.Second,
		ReconcileWait:              5 * time.Second,
		StartupBudget:              4 * time.Second,
		StartupNodeTimeout:         500 * time.Millisecond,
		StartupNodeRetries:         2,
		StartupWait:                5 * time.Second,
		ComputeHookTimeout:         500 * time.Millisecond,
		ComputeHookRetries:         4,
		ComputeHookBusyWait:        200 * time.Millisecond,
		MaxConcurrentNotifications: 4,
		MigrationLSNWait:           time.Second,
		MigrationTimeout:           10 * time.Second,
	}
}

// WipeDisk empties a node's disk and makes that durable (a lost disk: the
// node's next start finds nothing).
func WipeDisk(env node.Env) error {
	ents, err := env.Disk.ReadDir(".")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := env.Disk.RemoveAll(e.Name()); err != nil {
			return err
		}
	}
	return env.Disk.SyncDir(".")
}
