package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// The exit codes of Main.
const (
	// ExitOK: the daemon stopped cleanly, or -help / -version was asked.
	ExitOK = 0
	// ExitFailed: the daemon failed after its command line was accepted.
	ExitFailed = 1
	// ExitUsage: the command line or environment was rejected.
	ExitUsage = 2
)

// Main is the body of a daemon's main function: it parses args with parse,
// then runs the result with run, and returns the process exit code. -help
// (flag.ErrHelp, usage already printed by the flag set) and -version
// (ErrVersion; Main prints Version(name) to stdout) exit 0. Every error is
// printed once to stderr as "NAME: error", without repeating a "NAME: "
// prefix the error already carries, and a command-line error points at
// -help.
func Main[O any](name string, args []string, stdout, stderr io.Writer, parse func([]string) (O, error), run func(O) error) int {
	o, err := parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.Is(err, ErrVersion):
		fmt.Fprintln(stdout, Version(name))
		return ExitOK
	case err != nil:
		var printed *printedError
		if !errors.As(err, &printed) {
			fmt.Fprintf(stderr, "%s\n", Prefix(name, err))
			fmt.Fprintf(stderr, "run %s -help for the flags and their environment variables\n", name)
		}
		return ExitUsage
	}
	if err := run(o); err != nil {
		fmt.Fprintln(stderr, Prefix(name, err))
		return ExitFailed
	}
	return ExitOK
}

// Prefix is err's message behind "name: ", unless the message already
// starts with it (a node package's own errors carry the same prefix as
// the daemon named after it: "safekeeper: ...").
func Prefix(name string, err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, name+": ") {
		return msg
	}
	return name + ": " + msg
}
