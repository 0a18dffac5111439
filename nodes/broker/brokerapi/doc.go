// Package brokerpb holds the broker's protobuf wire messages and the
// generated gRPC stubs (see gen.go and docs/protobuf.md).
package brokerpb
