// Package disk is Strata's file-system seam: the FS and File interfaces,
// their crash contract (see FS), and the real OS implementation (Dir).
//
// Services never call package os; they receive an FS. The simulator supplies
// an in-memory FS that implements the same crash contract, drops unsynced
// data on crash and injects faults. Every implementation must pass the
// conformance suite in disk/disktest.
package disk
