package sim

import (
	"github.com/stratadb/strata/net"
)

// netLayer is what the world needs from the simulated network: per-node
// endpoints and breaking a node's connections when its incarnation ends.
type netLayer interface {
	addNode(n *Node)
	crashNode(n *Node)
	endpoint(n *Node) net.Network
}
