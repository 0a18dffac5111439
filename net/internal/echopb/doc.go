// Package echopb holds a tiny test-only protobuf service, Echo (unary Say,
// bidirectional Chat), used by the net packages' tests to prove that the
// seam's bytes are real protobuf, interchangeable with protoc-generated gRPC
// stubs. The generated *.pb.go files are committed; regenerate them with
// `go generate ./net/internal/echopb` (tool versions in docs/protobuf.md).
package echopb
