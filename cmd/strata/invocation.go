package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// invocationKey is the root command's annotation holding how the user
// runs this binary (see invocation); subcommands print it in the commands
// they suggest, such as a failing seed's reproduce line.
const invocationKey = "invocation"

// goRunInvocation is how the README runs the CLI from the repository root.
const goRunInvocation = "go run ./cmd/strata"

// cachedExeDir matches the build-cache directory holding an executable
// `go run` cached ("<64 hex digits>-d"), whatever GOCACHE is.
var cachedExeDir = regexp.MustCompile(`^[0-9a-f]{64}-d$`)

// invocation is the command that runs this binary again from the user's
// shell: "go run ./cmd/strata" when the binary was built by `go run`,
// otherwise argv0 as the user typed it ("strata", "./strata",
// "/opt/bin/strata"), quoted for a POSIX shell if it needs it. A `go run`
// binary lives in the go command's temporary work directory
// (…/go-buildNNN/b001/exe/strata) or, once cached, in its build cache
// (…/go-build/xx/<hash>-d/strata); exe is os.Executable's answer.
func invocation(argv0, exe string) string {
	for _, p := range []string{exe, argv0} {
		if builtByGoRun(p) {
			return goRunInvocation
		}
	}
	if argv0 == "" {
		return "strata"
	}
	return shellQuote(argv0)
}

func builtByGoRun(path string) bool {
	if path == "" {
		return false
	}
	path = filepath.ToSlash(path)
	dirs := strings.Split(path, "/")
	dirs = dirs[:len(dirs)-1]
	for _, d := range dirs {
		if strings.HasPrefix(d, "go-build") {
			return true
		}
	}
	return len(dirs) > 0 && cachedExeDir.MatchString(dirs[len(dirs)-1])
}

// shellQuote returns s unchanged when a POSIX shell reads it as one word,
// else single-quoted.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./+=:@%,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// selfInvocation is invocation for this process.
func selfInvocation() string {
	exe, _ := os.Executable()
	return invocation(os.Args[0], exe)
}
