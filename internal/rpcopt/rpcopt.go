// Package rpcopt holds the gRPC transport settings that Settle's own servers
// and clients share: the coordinator, its participant connections, the client
// SDK, the demo participants and the load generator.
package rpcopt

import "google.golang.org/grpc"

// Window is the HTTP/2 flow-control window, per stream and per connection.
//
// Setting a window turns off grpc-go's dynamic window (BDP estimation). With
// it on, every burst of incoming data makes the receiver send a PING and read
// its ack: an extra write and read on each side for messages of a few hundred
// bytes, which is what a Settle call usually carries. 1 MiB is sixteen times
// the default starting window and above the messages a call carries at the
// default limits (64 KiB payloads); larger messages still flow, with window
// updates, as they do with the dynamic window.
const Window = 1 << 20

// ServerOptions returns the options every Settle gRPC server is built
// with, followed by the caller's own (which can override them). A request
// whose bytes do not decode is refused with InvalidArgument (grpc-go
// answers Internal); the interceptors doing that run first, before the
// caller's.
func ServerOptions(opts ...grpc.ServerOption) []grpc.ServerOption {
	m := newMalformed()
	return append([]grpc.ServerOption{
		grpc.InitialWindowSize(Window),
		grpc.InitialConnWindowSize(Window),
		grpc.ForceServerCodecV2(m),
		grpc.ChainUnaryInterceptor(m.unary),
		grpc.ChainStreamInterceptor(m.stream),
	}, opts...)
}

// DialOptions returns the options every Settle gRPC client connection is
// dialled with, followed by the caller's own (transport credentials among
// them; they can override the window too).
func DialOptions(opts ...grpc.DialOption) []grpc.DialOption {
	return append([]grpc.DialOption{
		grpc.WithInitialWindowSize(Window),
		grpc.WithInitialConnWindowSize(Window),
	}, opts...)
}
