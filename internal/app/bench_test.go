package app_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

// BenchmarkCommitTwoBranches measures whole two-branch transactions in one
// process over loopback gRPC: Begin, two RegisterBranch + Try, Commit with
// wait (so both Confirms are done and recorded). The real harness with
// separate processes comes with the benchmark issue.
//
//	go test -run x -bench CommitTwoBranches -benchtime 5s ./internal/app
func BenchmarkCommitTwoBranches(b *testing.B) {
	for _, be := range dbtest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			spec := be.New(b)
			a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", DB: spec}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Shutdown(context.Background())
			part := testparticipant.Start(b)
			cc := tccv1.NewCoordinatorServiceClient(grpctest.Dial(b, a.Addr()))
			pc := tccv1.NewParticipantServiceClient(grpctest.Dial(b, part.Addr()))
			var seq atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					gid := fmt.Sprintf("bench-%d", seq.Add(1))
					if _, err := cc.Begin(ctx, &tccv1.BeginRequest{Gid: gid, Timeout: durationpb.New(time.Minute)}); err != nil {
						b.Error(err)
						return
					}
					for _, br := range []string{"accounts", "inventory"} {
						if _, err := cc.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: gid, BranchId: br, Participant: part.Addr(), Payload: []byte(`{"n":1}`)}); err != nil {
							b.Error(err)
							return
						}
						if _, err := pc.Try(ctx, &tccv1.TryRequest{Gid: gid, BranchId: br}); err != nil {
							b.Error(err)
							return
						}
					}
					r, err := cc.Commit(ctx, &tccv1.CommitRequest{Gid: gid, Wait: true})
					if err != nil || r.GetTransaction().GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED {
						b.Errorf("commit %s: %v %v", gid, err, r.GetTransaction().GetState())
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tx/s")
		})
	}
}
