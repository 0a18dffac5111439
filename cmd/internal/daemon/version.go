package daemon

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is "PROGRAM VERSION [REVISION[+dirty]] GOVERSION OS/ARCH", taken
// from the build information the Go toolchain embeds; every Strata binary
// (strata version, a daemon's -version) prints it. Builds with
// -buildvcs=false (or `go run`) carry no revision, and version "(devel)".
func Version(program string) string {
	version, revision, dirty := "(devel)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" {
			version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	out := program + " " + version
	if revision != "" {
		if len(revision) > 12 {
			revision = revision[:12]
		}
		out += " " + revision
		if dirty {
			out += "+dirty"
		}
	}
	return fmt.Sprintf("%s %s %s/%s", out, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
