package rpcopt

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/internal/grpctest"
)

// TestMalformedRequestIsInvalidArgument: bytes that are not a valid
// message get InvalidArgument on unary and streaming methods; valid ones
// still work.
func TestMalformedRequestIsInvalidArgument(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := ServerOptions()
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Field 1 (service, a string) with a length running past the end;
	// then a bare invalid tag.
	for _, bad := range [][]byte{{0x0a, 0x7f, 'x'}, {0xff, 0xff, 0xff}} {
		err := grpctest.InvokeRaw(ctx, cc, "/grpc.health.v1.Health/Check", bad)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("unary, malformed %x: %v, want InvalidArgument", bad, err)
		}
		desc := &grpc.StreamDesc{StreamName: "Watch", ServerStreams: true}
		st, err := cc.NewStream(ctx, desc, "/grpc.health.v1.Health/Watch", grpc.ForceCodecV2(grpctest.RawCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SendMsg(&bad); err != nil {
			t.Fatal(err)
		}
		_ = st.CloseSend()
		var out []byte
		if err := st.RecvMsg(&out); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("stream, malformed %x: %v, want InvalidArgument", bad, err)
		}
	}
	r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("a valid request after malformed ones: %v %v", r, err)
	}
}
