package pagecheck

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// DecodeAs returns v, a request or answer body a spy saw pass, as a T:
// the value itself, a pointer to one, or a JSON round trip of whatever
// the caller passed (a spy sees the caller's own types, not the wire).
func DecodeAs[T any](v any) (T, error) {
	switch x := v.(type) {
	case T:
		return x, nil
	case *T:
		if x != nil {
			return *x, nil
		}
	}
	var out T
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	return out, err
}

// PageserverOfAddr is the pageserver number N of a "ps-N:port" address
// (the scenarios' naming), 0 if it is not one.
func PageserverOfAddr(addr string) int {
	host, _, _ := strings.Cut(addr, ":")
	n, err := strconv.Atoi(strings.TrimPrefix(host, "ps-"))
	if err != nil || !strings.HasPrefix(host, "ps-") || n < 0 {
		return 0
	}
	return n
}

// Node ids and addresses of the scenarios' pageservers and safekeepers
// (numbered from 1); PageserverOfAddr reads the number back.
func PageserverID(i int) string       { return fmt.Sprintf("ps-%d", i) }
func PageserverPageAddr(i int) string { return fmt.Sprintf("ps-%d:6400", i) }
func PageserverHTTPAddr(i int) string { return fmt.Sprintf("ps-%d:9898", i) }
func SafekeeperID(i int) string       { return fmt.Sprintf("sk-%d", i) }
func SafekeeperAddr(i int) string     { return fmt.Sprintf("sk-%d:5454", i) }
