package daemon

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrEnv reports an environment fallback value that does not parse.
var ErrEnv = errors.New("daemon: bad environment value")

// ErrRequired reports a required flag that is neither on the command line
// nor in the environment (see MissingFlagError).
var ErrRequired = errors.New("daemon: required flag not set")

// ErrVersion is returned by Parse when -version was given: the caller
// prints Version and exits 0 (as it does for flag.ErrHelp).
var ErrVersion = errors.New("daemon: -version requested")

// MissingFlagError names a required flag by its command-line name and its
// environment variable. It matches ErrRequired.
type MissingFlagError struct {
	Flag, Env string
}

func (e *MissingFlagError) Error() string {
	return fmt.Sprintf("-%s is required (or set %s)", e.Flag, e.Env)
}

// Is makes errors.Is(err, ErrRequired) true.
func (e *MissingFlagError) Is(target error) bool { return target == ErrRequired }

// printedError is a command-line error the flag package already printed
// (with the usage) to the flag set's output; Main does not print it again.
type printedError struct{ err error }

func (e *printedError) Error() string { return e.err.Error() }
func (e *printedError) Unwrap() error { return e.err }

// FlagSet is a flag.FlagSet whose defaults come from the environment:
// flag "segment-bytes" of daemon "safekeeper" falls back to
// STRATA_SAFEKEEPER_SEGMENT_BYTES. Parse errors of environment values are
// collected and returned by Parse.
type FlagSet struct {
	*flag.FlagSet
	prefix string
	envErr error
	// secrets are the Secret flags, filled from the environment after
	// parsing when not given on the command line.
	secrets []secret
	// required are the flags that must end up non-empty (Required).
	required []string
	// version is the -version flag every daemon has.
	version bool
	// lookup reads the environment (os.LookupEnv; replaced in tests).
	lookup func(string) (string, bool)
}

// NewFlagSet returns a FlagSet for the named daemon that reports errors
// (flag.ContinueOnError) instead of exiting. It has a -version flag (Parse
// returns ErrVersion when it is given).
func NewFlagSet(daemon string) *FlagSet {
	f := &FlagSet{FlagSet: flag.NewFlagSet(daemon, flag.ContinueOnError),
		prefix: "STRATA_" + strings.ToUpper(daemon) + "_", lookup: os.LookupEnv}
	f.BoolVar(&f.version, "version", false, "print the version and exit")
	f.Usage = func() {
		w := f.Output()
		fmt.Fprintf(w, "Usage of %s:\n", daemon)
		f.PrintDefaults()
		fmt.Fprintf(w, "\nEvery flag but -version falls back to the environment variable %s<FLAG> (upper case, '-' as '_'),\n"+
			"e.g. -log-level to %s; a flag on the command line wins.\n", f.prefix, f.EnvName("log-level"))
	}
	return f
}

// Required marks flags (already defined) that must be non-empty after
// parsing, from the command line or the environment. Parse names a
// missing one by its flag name (MissingFlagError).
func (f *FlagSet) Required(names ...string) {
	f.required = append(f.required, names...)
}

// EnvName is the environment variable backing flag name.
func (f *FlagSet) EnvName(name string) string {
	return f.prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func (f *FlagSet) env(name, def string) string {
	if v, ok := f.lookup(f.EnvName(name)); ok {
		return v
	}
	return def
}

func (f *FlagSet) bad(name string, err error) {
	f.envErr = errors.Join(f.envErr, fmt.Errorf("%w: %s for -%s: %w", ErrEnv, f.EnvName(name), name, err))
}

// String defines a string flag.
func (f *FlagSet) String(p *string, name, def, usage string) {
	f.StringVar(p, name, f.env(name, def), usage)
}

// Duration defines a duration flag.
func (f *FlagSet) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	d, err := time.ParseDuration(f.env(name, def.String()))
	if err != nil {
		f.bad(name, err)
	}
	f.DurationVar(p, name, d, usage)
}

// Int64 defines an int64 flag.
func (f *FlagSet) Int64(p *int64, name string, def int64, usage string) {
	v, err := strconv.ParseInt(f.env(name, strconv.FormatInt(def, 10)), 10, 64)
	if err != nil {
		f.bad(name, err)
	}
	f.Int64Var(p, name, v, usage)
}

// Int defines an int flag.
func (f *FlagSet) Int(p *int, name string, def int, usage string) {
	v, err := strconv.Atoi(f.env(name, strconv.Itoa(def)))
	if err != nil {
		f.bad(name, err)
	}
	f.IntVar(p, name, v, usage)
}

type secret struct {
	p    *string
	name string
}

// Secret defines a string flag holding a credential. Unlike String, its
// environment value is not used as the flag's default: it is applied after
// parsing, so -help never prints it. The usage text says the environment
// form is preferred (a command line is visible to every user through ps
// and /proc).
func (f *FlagSet) Secret(p *string, name, usage string) {
	f.StringVar(p, name, "", fmt.Sprintf("%s (prefer the environment variable %s: command lines are visible to other users)", usage, f.EnvName(name)))
	f.secrets = append(f.secrets, secret{p: p, name: name})
}

// Bool defines a bool flag.
func (f *FlagSet) Bool(p *bool, name string, def bool, usage string) {
	v, err := strconv.ParseBool(f.env(name, strconv.FormatBool(def)))
	if err != nil {
		f.bad(name, err)
	}
	f.BoolVar(p, name, v, usage)
}

// Parse parses args (-help returns flag.ErrHelp, -version ErrVersion),
// then reports bad environment values, fills Secret flags not given on the
// command line from the environment, and checks the Required flags.
func (f *FlagSet) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &printedError{err}
	}
	// -version wins over everything else on the command line, as -help
	// does: an operator asking for it gets it even with flags missing.
	if f.version {
		return ErrVersion
	}
	if f.envErr != nil {
		return f.envErr
	}
	given := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for _, s := range f.secrets {
		if v, ok := f.lookup(f.EnvName(s.name)); ok && !given[s.name] {
			*s.p = v
		}
	}
	var missing error
	for _, name := range f.required {
		fl := f.Lookup(name)
		if fl == nil {
			return fmt.Errorf("daemon: Required(%q): no such flag", name)
		}
		if fl.Value.String() == "" {
			missing = errors.Join(missing, &MissingFlagError{Flag: name, Env: f.EnvName(name)})
		}
	}
	return missing
}

// Options are the flags every daemon has.
type Options struct {
	// HTTPAddr serves /metrics, /live, /ready (and pprof); empty: none.
	HTTPAddr string
	// LogFormat is "json" (default) or "text".
	LogFormat string
	// LogLevel is debug, info (default), warn or error.
	LogLevel string
	// Pprof mounts /debug/pprof/ on the HTTP server.
	Pprof bool
	// DrainTimeout bounds how long shutdown waits for in-flight calls.
	// Default 5s.
	DrainTimeout time.Duration
}

// Register defines the common flags on f.
func (o *Options) Register(f *FlagSet) {
	f.String(&o.HTTPAddr, "http", "", "HTTP address for /metrics, /live, /ready (empty: none)")
	f.String(&o.LogFormat, "log-format", "json", "log format: json or text")
	f.String(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.Bool(&o.Pprof, "pprof", false, "serve /debug/pprof/ on the HTTP address")
	f.Duration(&o.DrainTimeout, "drain-timeout", 5*time.Second, "how long SIGTERM waits for in-flight calls")
}
