package bad

import (
	stdnet "net" // want `import of net: net reaches the real network`
	"net/http"   // want `import of net/http`
	"os"         // want `import of os: os reaches the host`
	"os/exec"    // want `import of os/exec`
	"os/signal"  // want `import of os/signal`
	"syscall"    // want `import of syscall`
)

func host() {
	f, _ := os.Open("x")                     // want `os.Open: os reaches the host; use disk.FS`
	_ = f.Close()                            // methods of values are not reported again
	_ = os.Args                              // want `os.Args`
	_, _ = stdnet.Dial("tcp", "127.0.0.1:1") // want `net.Dial: net reaches the real network`
	_, _ = http.Get("http://127.0.0.1/")     // want `net/http.Get`
	_ = exec.Command("true")                 // want `os/exec.Command`
	signal.Reset()                           // want `os/signal.Reset`
	_ = syscall.Getpid()                     // want `syscall.Getpid`
}
