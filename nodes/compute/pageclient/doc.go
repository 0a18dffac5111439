// Package pageclient is the compute's rich page client: it reads pages of
// one timeline of a (possibly sharded) tenant from the pageservers' page
// service (nodes/pageserver/pageapi) over the net seam — the simulator's
// network in tests, gRPC (net/grpcx) in real mode. docs/page-client.md
// describes it; Neon's equivalent is its compute-side gRPC client.
//
// Shape. Per shard (an index and an address of the current ShardMap) a
// pool holds connections, each shared by up to ClientsPerConn clients (a
// GetPages stream or a unary call); up to StreamsPerShard GetPages streams;
// and a separate bulk half (own connections of BulkClientsPerConn clients,
// up to BulkStreamsPerShard streams) for request parts of BulkThreshold
// blocks or more. A request takes an idle stream, else opens one while
// under the limit, else pipelines on the least loaded stream with fewer
// than InflightPerStream requests in flight, else waits. Streams and
// connections idle for IdleTimeout are closed by a reaper task.
//
// A multi-shard GetPages request is split by owner shard (engine/shard's
// mapping with the map's count and stripe), the parts are sent in parallel
// as clock.Group tasks and the answers put back in request order.
// Relation size, database size and SLRU requests go to shard 0.
//
// Retries: a failed attempt whose code may heal (Unavailable, Aborted,
// Canceled, DeadlineExceeded, ResourceExhausted) is retried after an
// exponential back-off with jitter (BackoffBase doubling to BackoffMax;
// the jitter comes from a source seeded from the node's Env.Rand), each
// attempt under AttemptTimeout and the whole call under CallTimeout. The
// retry of a part routes by the map current then, so after a split it may
// fan out to the children.
//
// Invariants:
//   - An answer is returned only if every page is the block asked for, at
//     its position: a response with a page missing, extra, for another
//     block or out of order, or for another request id, is an Internal
//     error, and Internal is never retried.
//   - On a stream, responses are matched to requests strictly in send
//     order by request id and attempt; the first mismatch breaks the stream
//     and fails every request on it.
//   - request_id.attempt is the attempt number (0 for the first try) of
//     the part it belongs to; ids are unique per client.
//   - The shard map only changes through UpdateShardMap, which refuses an
//     invalid map, a smaller count and, once sharded, a new stripe. An
//     attempt routes by one map throughout; a map swapped meanwhile affects
//     only later attempts.
//   - The named limits hold at all times: connections per pool, clients
//     per connection, streams per shard and pool half, requests in flight
//     per stream, blocks per request, attempts per call.
//   - Only the clock seam makes tasks, waits and timers (no goroutines,
//     channels, select or real time); nothing depends on map order.
package pageclient
