// Package simnet is the simulator's in-memory implementation of the
// net.Network seam, built only on the clock seam: no goroutines, native
// channels or wall-clock reads, so that under the simulator's scheduler a
// run is a pure function of its seed.
//
// Model. A Network holds nodes (string ids). Each node sees the network
// through an endpoint (Node, or Endpoint with the clock of the node's
// current incarnation). A listener belongs to the node that created it and
// is addressed by a plain "host:port" string (port 0 picks a free port).
// Every call — unary or stream — is a pair of one-way pipes. Every message
// is copied when sent and delivered after a latency drawn from the seeded
// rng (base + uniform jitter + an occasional long tail); a pipe delivers in
// send order (a later message never overtakes an earlier one) and holds at
// most Options.StreamWindow messages in flight plus unread, so senders feel
// back-pressure. Handlers run as tasks started with the listening node's
// Clock.Go when the call's first message arrives.
//
// Faults. A partitioned link (Partition, PartitionOneWay) silently drops
// what crosses it; a pipe that lost a message stays dead so streams never
// show gaps, and a call with a dead pipe, or idle across a partition, breaks
// with Unavailable after Options.DeadLinkTimeout — the keepalive timeout of
// a real transport — unless its context ends first. BreakConnections breaks
// a node's calls at once; CrashNode also closes its listeners and makes its
// old endpoints fail, so the node's next incarnation must Listen again.
// SetLinkLatency slows one direction; Heal clears partitions and slow links.
//
// Determinism. Iteration is over slices or sorted ids, never map order; the
// rng is drawn only under the network's mutex in task order; OnDeliver
// reports every delivered message so a trace hash can cover them.
//
// Errors follow the seam: every error is a *net.Status (or io.EOF from
// stream Recv, and from client Send once the stream ended).
package simnet
