package tcc_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/server"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/tcc"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

// TestRoundOfAnotherOwnerIsSkipped: a record read back after this
// instance's compare-and-set, but claimed by another instance in between
// (this one stalled past its lease), carries the other owner and its
// version. A round with it would be accepted while the other instance
// drives the transaction (S15; model/README.md, LOAD_AFTER_CAS), so the
// round is skipped: no participant call, no write.
func TestRoundOfAnotherOwnerIsSkipped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	store, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "fence.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	part := testparticipant.Start(t)
	parts := server.NewParticipants()
	defer parts.Close()
	c, err := tcc.NewCoordinator(store, parts, tcc.Config{InstanceID: "a"}, nil, nil, tcc.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Begin(ctx, tcc.BeginParams{GID: "g", Branches: []tcc.BranchSpec{{BranchID: "b", Participant: part.Addr()}}}); err != nil {
		t.Fatal(err)
	}
	part.SetBehaviour(func(context.Context, string, string, string) error { return testparticipant.Unavailable("down") })
	if _, err := c.Commit(ctx, "g", true); err != nil {
		t.Fatal(err)
	}
	tx, err := store.GetTransaction(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	calls := part.Attempts("Confirm", "g", "b")

	stolen := *tx
	stolen.LeaseOwner = "b" // what a read after another instance's claim returns
	if err := tcc.DeliverForTest(c, ctx, &stolen); err != nil {
		t.Fatal(err)
	}
	if n := part.Attempts("Confirm", "g", "b"); n != calls {
		t.Fatalf("the round of a record another instance holds called the participant (%d calls, want %d)", n, calls)
	}
	after, err := store.GetTransaction(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != tx.Version || after.Attempts != tx.Attempts {
		t.Fatalf("the skipped round wrote: version %d -> %d, attempts %d -> %d", tx.Version, after.Version, tx.Attempts, after.Attempts)
	}

	// The same record as this instance's claim returns it is delivered.
	mine := *tx
	mine.LeaseOwner = "a"
	if err := tcc.DeliverForTest(c, ctx, &mine); err != nil {
		t.Fatal(err)
	}
	if n := part.Attempts("Confirm", "g", "b"); n != calls+1 {
		t.Fatalf("the owner's round made %d calls, want 1", n-calls)
	}
}
