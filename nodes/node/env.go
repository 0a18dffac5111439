package node

import (
	"log/slog"
	"math/rand/v2"

	"github.com/pingcap/failpoint"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/net"
)

// Env is everything a service may use to touch the world. A node receives it
// at construction and reaches nothing past it; the daemons in cmd/ fill it
// with real seams, the simulator with simulated ones.
type Env struct {
	// ID names the node (e.g. "sk-1"); it appears in logs and metrics.
	ID string
	// Clock is the time-and-task seam.
	Clock clock.Clock
	// Net is the transport seam.
	Net net.Network
	// Disk is the node's own file system.
	Disk disk.FS
	// Store is the shared object store (nil if the service needs none).
	Store objstore.Store
	// Rand is the node's seeded random source. Never use the global one.
	Rand *rand.Rand
	// Log is the node's logger (virtual time in the simulator).
	Log *slog.Logger
	// Metrics is the node's own registry.
	Metrics *prometheus.Registry
	// Failpoints are the node's failpoints (never the global set).
	Failpoints *failpoint.Failpoints
}
