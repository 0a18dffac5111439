// Package counter is the simulator's first scenario: one server node keeps a
// durable counter (nodes/counter), several client nodes increment it over the
// simulated network with retries, while a nemesis crashes and restarts the
// server, tears its unsynced writes, fails its disk operations, and
// partitions, slows and breaks the network. Then everything heals and every
// client must complete a fresh increment within a virtual-time budget.
//
// Checker: the server is crashed one last time (power loss) and its durable
// log is read back from its disk. No acknowledged increment may be lost (an
// ack for value v means position v of the durable log holds that very
// increment), none may be invented (every record was sent by its client, and
// no (client, seq) appears twice), and every increment whose acknowledgement
// was lost is resolved from the durable log as applied or not applied —
// never ignored.
//
// Planted bugs: counter-ack-before-sync and counter-no-dir-sync, both caught
// by the lost-acknowledged-increment check, and counter-no-dedup, caught by
// the invented-increment check.
package counter
