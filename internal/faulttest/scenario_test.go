package faulttest

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/demo"
)

// TestS7RepeatedTryAfterTriedBranchCancelled is the scenario the long run
// (MariaDB, seed 20261128) reported as "two copies of one Try answered
// differently": two copies of one Try are sent, one is applied, the reply
// of the other is lost and it is retried; meanwhile the transaction passes
// its deadline and the coordinator cancels the branch; the retried copy
// then reaches the participant. The participant must refuse it (a Try
// applied now would hold a reservation nobody releases) and change
// nothing, even though the first Try had succeeded.
//
// Found with it: the refusal said "was cancelled first" although the Try
// came first. The SDK now says "tried and then cancelled" (see
// participant.TestRepeatedTryAfterTriedThenCancelled). The answer still
// differs from the first Try's on purpose: OK would claim a reservation
// that has been released (docs/participant-protocol.md).
func TestS7RepeatedTryAfterTriedBranchCancelled(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts real processes")
	}
	c, base, shop := startTestCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gid := "s7-repeated-try-after-cancel"
	b := demo.BranchInventory
	payload := demo.InventoryPayload("pen", 1)
	coord, part := c.DirectCoord[0], c.PartClients[b]
	if _, err := coord.Begin(ctx, &tccv1.BeginRequest{Gid: gid, Timeout: durationpb.New(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: gid, BranchId: b, Participant: c.ParticipantTarget(b), Payload: payload}); err != nil {
		t.Fatal(err)
	}
	if _, err := part.Try(ctx, &tccv1.TryRequest{Gid: gid, BranchId: b, Payload: payload}); err != nil {
		t.Fatalf("first Try: %v", err)
	}
	if _, err := coord.Rollback(ctx, &tccv1.RollbackRequest{Gid: gid, Reason: "deadline stand-in", Wait: true}); err != nil {
		t.Fatal(err)
	}
	r, err := coord.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: gid})
	if err != nil || r.GetTransaction().GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTED {
		t.Fatalf("after rollback: %v %v", r.GetTransaction().GetState(), err)
	}
	_, err = part.Try(ctx, &tccv1.TryRequest{Gid: gid, BranchId: b, Payload: payload})
	if err == nil {
		t.Fatal("the repeated Try after the Cancel was accepted: it would hold a reservation that nobody releases")
	}
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("repeated Try after Cancel: %v, want FailedPrecondition", err)
	}
	t.Logf("repeated Try after Try+Cancel is refused: %v", status.Convert(err).Message())
	db := dbtest.Open(t, c.partDB[b])
	fences, err := readFences(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if f := fences[gid]; f.state != fenceCancelled || !f.tried {
		t.Fatalf("fence is %s, want CANCELLED after the Try (tried, then cancelled)", f)
	}
	after, err := readSnapshots(ctx, c.partDB)
	if err != nil {
		t.Fatal(err)
	}
	if after.Stock.Reserved != 0 || stockOf(after.Stock, "pen") != stockOf(base.Stock, "pen") {
		t.Fatalf("stock changed: before %+v after %+v", stockOf(base.Stock, "pen"), stockOf(after.Stock, "pen"))
	}
	_ = shop
}
