// Package badnode shows that nodes/ is in scope too.
package badnode

import "time"

var started = time.Now() // want `package-level variable started` `time.Now reads the real clock`

func run(f func()) {
	go f() // want `go statement`
}
