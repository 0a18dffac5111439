package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// benchRun is the frame the in-process benchmarks share: a temporary
// directory under parent (removed afterwards), an optional CPU profile of
// the whole run, then the results as one JSON object per line or through
// writeTable.
func benchRun[R any](cmd *cobra.Command, name, parent, cpuProfile string, asJSON bool,
	run func(dir string) ([]R, error), writeTable func(io.Writer, []R) error) error {
	dir, err := os.MkdirTemp(parent, "strata-bench-"+name+"-")
	if err != nil {
		return fmt.Errorf("bench %s: %w", name, err)
	}
	defer os.RemoveAll(dir)
	if cpuProfile != "" {
		pf, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	results, err := run(dir)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON {
		for _, r := range results {
			b, _ := json.Marshal(r)
			fmt.Fprintln(out, string(b))
		}
		return nil
	}
	return writeTable(out, results)
}
