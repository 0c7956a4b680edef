// Package grpctest gives tests real gRPC servers and clients on loopback,
// stopped and closed when the test ends.
package grpctest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Serve serves srv on a fresh 127.0.0.1 port until the test ends (then it
// stops srv and waits for Serve to return) and returns the address.
func Serve(tb testing.TB, srv *grpc.Server) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	tb.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// Dial returns a plaintext client connection to addr, closed when the test
// ends.
func Dial(tb testing.TB, addr string) *grpc.ClientConn {
	tb.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Burst runs fn n times at once (all released together) and returns the
// status code of each call.
func Burst(n int, fn func() error) []codes.Code {
	start := make(chan struct{})
	out := make([]codes.Code, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = status.Code(fn())
		})
	}
	close(start)
	wg.Wait()
	return out
}

// WantCode fails the test unless err carries code (codes.OK means nil) and
// its message contains each of contains.
func WantCode(tb testing.TB, err error, code codes.Code, contains ...string) {
	tb.Helper()
	if got := status.Code(err); got != code {
		tb.Fatalf("error %v: code %v, want %v", err, got, code)
	}
	for _, s := range contains {
		if msg := status.Convert(err).Message(); !strings.Contains(msg, s) {
			tb.Fatalf("error %v: message %q does not mention %q", err, msg, s)
		}
	}
}
