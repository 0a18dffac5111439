// Command strata is Strata's operator CLI: the simulator (`strata sim`),
// benchmarks, key and layer-file inspection, and cluster control, each a
// subcommand.
//
// Adding a subcommand needs no shared list: put it in its own file in this
// package and register its constructor from an init function,
//
//	func init() { register(newKeyCmd) }
//
//	func newKeyCmd() *cobra.Command { ... }
//
// newRootCmd builds a fresh command tree from the registered constructors on
// every call, so tests can run commands in-process without flag state leaking
// between runs. Cobra sorts subcommands by name in help, so registration
// order does not matter.
//
// Invariants: subcommands write to cmd.OutOrStdout()/ErrOrStderr() (never
// os.Stdout directly) so in-process tests capture them; they return errors
// rather than exiting; the context passed to RunE is cancelled on SIGINT or
// SIGTERM; a command they print for the user to run (a reproduce line)
// starts with the root command's invocation annotation ("go run
// ./cmd/strata" under go run, else argv[0]), so it works as printed. This package is outside the determinism rules (cmd/ wires real
// seams), but the simulator it drives is not.
package main
