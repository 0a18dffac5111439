package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/cmd/internal/daemon"
)

func init() { register(newVersionCmd) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the strata version, VCS revision and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return err
		},
	}
}

// versionString is "strata VERSION [REVISION[+dirty]] GOVERSION OS/ARCH",
// the same build information every daemon's -version prints.
func versionString() string { return daemon.Version("strata") }
