package app_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
)

// TestBeginWithBranches: branches registered with Begin are recorded in the
// same write, driven like registered ones, and checked on a repeated Begin;
// a refused branch leaves nothing written.
func TestBeginWithBranches(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec)
		ctx := ctxT(t)
		reg := func(id, payload string) *tccv1.BranchRegistration {
			return &tccv1.BranchRegistration{BranchId: id, Participant: e.part.Addr(), Payload: []byte(payload)}
		}
		req := &tccv1.BeginRequest{Gid: "bb-1", Timeout: durationpb.New(10 * time.Second),
			Branches: []*tccv1.BranchRegistration{reg("a", "pay-a"), reg("b", "pay-b")}}
		r, err := e.coord.Begin(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if tx := r.GetTransaction(); tx.GetState() != trying || len(tx.GetBranches()) != 2 ||
			tx.GetBranches()[0].GetState() != tccv1.BranchState_BRANCH_STATE_REGISTERED {
			t.Fatalf("begin answered %v with branches %v", tx.GetState(), tx.GetBranches())
		}
		// Registering one of them again with the same parameters is a
		// repeat; a third branch can still be added.
		if _, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "bb-1", BranchId: "a", Participant: e.part.Addr(), Payload: []byte("pay-a")}); err != nil {
			t.Fatalf("repeated registration: %v", err)
		}
		if _, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "bb-1", BranchId: "c", Participant: e.part.Addr(), Payload: []byte("pay-c")}); err != nil {
			t.Fatalf("third branch: %v", err)
		}
		for _, b := range []string{"a", "b", "c"} {
			if _, err := e.pc.Try(ctx, &tccv1.TryRequest{Gid: "bb-1", BranchId: b}); err != nil {
				t.Fatal(err)
			}
		}
		c, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "bb-1", Wait: true})
		if err != nil || c.GetTransaction().GetState() != committed {
			t.Fatalf("commit: %v %v", err, c.GetTransaction().GetState())
		}
		for _, b := range []string{"a", "b", "c"} {
			if n := e.part.Count("Confirm", "bb-1", b); n != 1 {
				t.Fatalf("branch %s confirmed %d times", b, n)
			}
		}

		// A repeated Begin with the same branches succeeds (the record as
		// it is now); a subset too; a changed payload or an unknown branch
		// is refused.
		if r, err := e.coord.Begin(ctx, req); err != nil || r.GetTransaction().GetState() != committed {
			t.Fatalf("repeated begin: %v %v", err, r.GetTransaction().GetState())
		}
		req.Branches = []*tccv1.BranchRegistration{reg("a", "pay-a")}
		if _, err := e.coord.Begin(ctx, req); err != nil {
			t.Fatalf("repeated begin naming one branch: %v", err)
		}
		req.Branches = []*tccv1.BranchRegistration{reg("a", "pay-a"), reg("b", "other")}
		_, err = e.coord.Begin(ctx, req)
		grpctest.WantCode(t, err, codes.AlreadyExists, "bb-1", "branch b")
		req.Branches = []*tccv1.BranchRegistration{reg("z", "pay-z")}
		_, err = e.coord.Begin(ctx, req)
		grpctest.WantCode(t, err, codes.AlreadyExists, "bb-1", "branch z is not registered")

		// Refusals write nothing.
		tooMany := make([]*tccv1.BranchRegistration, 65)
		for i := range tooMany {
			tooMany[i] = reg(fmt.Sprintf("b%02d", i), "p")
		}
		for _, tc := range []struct {
			name     string
			branches []*tccv1.BranchRegistration
			code     codes.Code
			contains string
		}{
			{"listed twice", []*tccv1.BranchRegistration{reg("a", "x"), reg("a", "y")}, codes.InvalidArgument, "listed twice"},
			{"bad branch id", []*tccv1.BranchRegistration{reg("a b", "x")}, codes.InvalidArgument, "branch"},
			{"not allowed", []*tccv1.BranchRegistration{reg("a", "x"), {BranchId: "b", Participant: "203.0.113.9:7501"}}, codes.PermissionDenied, "203.0.113.9:7501"},
			{"too many", tooMany, codes.InvalidArgument, "limit is 64"},
			{"payload too big", []*tccv1.BranchRegistration{{BranchId: "a", Participant: e.part.Addr(), Payload: make([]byte, 65<<10)}}, codes.InvalidArgument, "payload"},
		} {
			gid := "bb-refused"
			_, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: gid, Branches: tc.branches})
			grpctest.WantCode(t, err, tc.code, tc.contains)
			_, err = e.coord.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: gid})
			grpctest.WantCode(t, err, codes.NotFound)
		}
	})
}
