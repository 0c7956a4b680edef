package auth

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// BenchmarkUnaryInterceptor is the authentication and authorization cost
// of one call with a bearer token, with a token file of 3 and of 100
// identities (the comparison runs over every token).
func BenchmarkUnaryInterceptor(b *testing.B) {
	for _, n := range []int{3, 100} {
		b.Run(map[int]string{3: "tokens=3", 100: "tokens=100"}[n], func(b *testing.B) {
			text := tokenFile
			for i := range n - 3 {
				text += "filler-token-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "-0123456789,f,initiator\n"
			}
			a, err := New(Config{TokenFile: writeTokens(b, text)})
			if err != nil {
				b.Fatal(err)
			}
			icpt := a.UnaryInterceptor()
			ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+initToken))
			info := &grpc.UnaryServerInfo{FullMethod: "/settle.tcc.v1.CoordinatorService/Commit"}
			handler := func(ctx context.Context, req any) (any, error) { return req, nil }
			b.ReportAllocs()
			for b.Loop() {
				if _, err := icpt(ctx, nil, info, handler); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
