package grpctest

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
)

// RawCodec sends the bytes it is given as they are (a *[]byte) and
// receives bytes into a *[]byte: for tests that send malformed messages.
type RawCodec struct{}

// Name is "proto": the server decodes with its protobuf codec.
func (RawCodec) Name() string { return "proto" }

// Marshal returns *v.(*[]byte) unchanged.
func (RawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

// Unmarshal copies the reply's bytes into *v.(*[]byte).
func (RawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// InvokeRaw calls a unary method with req's bytes as the request message.
func InvokeRaw(ctx context.Context, cc *grpc.ClientConn, method string, req []byte) error {
	var out []byte
	return cc.Invoke(ctx, method, &req, &out, grpc.ForceCodecV2(RawCodec{}))
}
