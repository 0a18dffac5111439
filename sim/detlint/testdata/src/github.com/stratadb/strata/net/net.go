// Package net is a stand-in for Strata's own transport seam, which shares
// its last path element with the standard library's net.
package net

import "context"

type Network interface {
	Dial(ctx context.Context, addr string) (Conn, error)
}

type Conn interface {
	Call(ctx context.Context, method string, req []byte) ([]byte, error)
}

const MaxMessageBytes = 16 << 20
