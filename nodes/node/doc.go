// Package node holds Env, the bundle of seams every Strata service is built
// from. Invariant: a service's only route to time, tasks, network, disk,
// object storage, randomness, logs, metrics and failpoints is its Env.
package node
