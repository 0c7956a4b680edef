package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Local is an in-process gRPC channel: a grpc.ClientConnInterface whose
// calls go straight to the services registered on it (it is also a
// grpc.ServiceRegistrar), through the unary interceptors it was made with,
// without a network hop or a codec.
//
// The HTTP/JSON gateway calls the services through it, so that an HTTP
// request is authorized, limited, measured and guarded against panics by
// the very interceptors of the gRPC server, keyed by the gRPC method the
// route calls (auth.Policy is the one table of who may call what).
//
// A call's context is what the server side of a real call would see: the
// caller's outgoing metadata (from the gateway: the Authorization header,
// X-Forwarded-For/-Host) becomes incoming metadata and is removed from the
// outgoing side, so nothing the caller sent is forwarded if a handler calls
// out; the peer (its address and verified TLS client certificate) is the
// one put in the context by whoever received the request (HTTPHandler sets
// it from the HTTP connection, never from a header); headers and trailers
// set by the interceptors and handlers come back through grpc.Header and
// grpc.Trailer call options.
type Local struct {
	interceptor grpc.UnaryServerInterceptor

	mu      sync.RWMutex
	methods map[string]localMethod // full method name -> handler
}

type localMethod struct {
	impl    any
	handler grpc.MethodHandler
}

var _ grpc.ClientConnInterface = (*Local)(nil)
var _ grpc.ServiceRegistrar = (*Local)(nil)

// NewLocal returns a Local running every call through interceptors, first
// to last (like grpc.ChainUnaryInterceptor).
func NewLocal(interceptors ...grpc.UnaryServerInterceptor) *Local {
	return &Local{interceptor: chainUnary(interceptors), methods: map[string]localMethod{}}
}

// RegisterService registers impl, a server of desc's service; only its
// unary methods are callable.
func (l *Local) RegisterService(desc *grpc.ServiceDesc, impl any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range desc.Methods {
		l.methods["/"+desc.ServiceName+"/"+m.MethodName] = localMethod{impl: impl, handler: m.Handler}
	}
}

// Invoke calls method with args and fills reply.
func (l *Local) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	l.mu.RLock()
	m, ok := l.methods[method]
	l.mu.RUnlock()
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	in, ok := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok || !ok2 {
		return status.Errorf(codes.Internal, "%s: request and reply must be protobuf messages", method)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	ctx = metadata.NewIncomingContext(ctx, md.Copy())
	ctx = metadata.NewOutgoingContext(ctx, metadata.MD{})
	st := &localStream{method: method}
	ctx = grpc.NewContextWithServerTransportStream(ctx, st)

	dec := func(v any) error {
		msg, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("%T is not a protobuf message", v)
		}
		proto.Merge(msg, in)
		return nil
	}
	resp, err := m.handler(m.impl, ctx, dec, l.interceptor)
	st.deliver(opts)
	if err != nil {
		if _, isStatus := status.FromError(err); !isStatus {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return status.FromContextError(err).Err()
			}
			return status.Error(codes.Unknown, err.Error())
		}
		return err
	}
	msg, ok := resp.(proto.Message)
	if !ok || msg == nil {
		return status.Errorf(codes.Internal, "%s returned no message", method)
	}
	proto.Reset(out)
	proto.Merge(out, msg)
	return nil
}

// NewStream is not supported: the services served over HTTP are unary.
func (l *Local) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "streaming is not served in-process")
}

// localStream collects the headers and trailers a call sets, for the
// grpc.Header and grpc.Trailer options of its caller.
type localStream struct {
	method string

	mu      sync.Mutex
	header  metadata.MD
	trailer metadata.MD
}

func (s *localStream) Method() string { return s.method }

func (s *localStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *localStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *localStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

func (s *localStream) deliver(opts []grpc.CallOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = s.header.Copy()
		case grpc.TrailerCallOption:
			*o.TrailerAddr = s.trailer.Copy()
		}
	}
}

// chainUnary runs interceptors first to last around a handler.
func chainUnary(interceptors []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		next := handler
		for i := len(interceptors) - 1; i >= 0; i-- {
			ic, h := interceptors[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, h) }
		}
		return next(ctx, req)
	}
}
