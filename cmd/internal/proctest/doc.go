// Package proctest holds what the daemons' real-process tests share: free
// loopback addresses, an environment a developer's settings cannot leak
// into, and an output buffer safe to read while a process writes it.
package proctest
