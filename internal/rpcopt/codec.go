package rpcopt

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	protov2 "google.golang.org/protobuf/proto"
)

// malformed answers a request whose bytes are not a valid message of the
// method's request type with InvalidArgument, as the protocol promises,
// instead of grpc-go's Internal ("grpc: error unmarshalling request").
//
// grpc-go gives a codec's Unmarshal error the code Internal whatever it
// is, so the codec below does not fail: it resets the message, remembers
// it as malformed, and the interceptors, which receive that same message
// before any handler, refuse it. The two are installed together by
// ServerOptions; a message is remembered only until its interceptor takes
// it.
type malformed struct {
	base   encoding.CodecV2
	failed sync.Map // request message -> its decoding error
}

func newMalformed() *malformed {
	return &malformed{base: encoding.GetCodecV2(proto.Name)}
}

func (m *malformed) Name() string { return m.base.Name() }

func (m *malformed) Marshal(v any) (mem.BufferSlice, error) { return m.base.Marshal(v) }

func (m *malformed) Unmarshal(data mem.BufferSlice, v any) error {
	err := m.base.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	msg, ok := v.(protov2.Message)
	if !ok {
		return err
	}
	protov2.Reset(msg)
	m.failed.Store(v, err)
	return nil
}

// refuse returns the InvalidArgument status for req if it failed to decode.
func (m *malformed) refuse(req any, method string) error {
	if err, ok := m.failed.LoadAndDelete(req); ok {
		return status.Errorf(codes.InvalidArgument, "%s: the request is not a valid protobuf message: %v", method, err)
	}
	return nil
}

func (m *malformed) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := m.refuse(req, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (m *malformed) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &checkedStream{ServerStream: ss, m: m, method: info.FullMethod})
}

type checkedStream struct {
	grpc.ServerStream
	m      *malformed
	method string
}

func (s *checkedStream) RecvMsg(v any) error {
	if err := s.ServerStream.RecvMsg(v); err != nil {
		return err
	}
	return s.m.refuse(v, s.method)
}
