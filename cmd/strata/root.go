package main

import (
	"github.com/spf13/cobra"
)

// subcommands holds the registered subcommand constructors. It is written
// only by init functions (before main runs), so it needs no lock.
var subcommands []func() *cobra.Command

// register adds a subcommand constructor to every root built afterwards.
// Call it from an init function in the subcommand's own file.
func register(newCmd func() *cobra.Command) {
	subcommands = append(subcommands, newCmd)
}

// newRootCmd builds the `strata` command with every registered subcommand.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "Strata: a storage engine for serverless Postgres-style databases, tested by deterministic simulation",
		Long: `strata is the operator CLI for Strata, a storage engine for serverless
Postgres-style databases (safekeepers, pageservers, a storage controller and
object storage) built to be tested by deterministic simulation.`,
		Version: versionString(),
		// Errors are printed once by main; usage is shown only for flag and
		// argument mistakes, which cobra reports before RunE runs.
		SilenceErrors: true,
		SilenceUsage:  true,
		// Args stays nil: cobra then rejects an unknown subcommand name with
		// "unknown command" and prints help when none is given.
	}
	root.SetVersionTemplate("{{.Version}}\n")
	for _, newCmd := range subcommands {
		root.AddCommand(newCmd())
	}
	return root
}
