package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, selfInvocation(), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI with args and returns the process exit code:
// 0 on success, 1 when a command or its arguments failed. inv is how the
// user runs the CLI (see invocation), used in the commands it prints.
func run(ctx context.Context, inv string, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.Annotations = map[string]string{invocationKey: inv}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return 1
	}
	return 0
}
