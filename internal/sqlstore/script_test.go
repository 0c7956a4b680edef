package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/tcc"
)

// TestFailedWriteLeavesNothingOpen: a Begin with branches that fails part
// way (its gid exists) must not leave a half-open transaction on a pooled
// connection (on MySQL it is a multi-statement script that stops at the
// error). Writes made afterwards through the same store must all be
// committed: another store, with its own connections, sees every one.
func TestFailedWriteLeavesNothingOpen(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		ctx := context.Background()
		a, b := openTwo(t, spec)
		if err := a.InsertTransaction(ctx, knownTx("taken", "p")); err != nil {
			t.Fatal(err)
		}
		const n = 20
		for i := 0; i < n; i++ {
			if err := a.InsertTransaction(ctx, knownTx(fmt.Sprintf("after-%02d", i), "p", "q")); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < n; i++ {
			if err := a.InsertTransaction(ctx, knownTx("taken", "x", "y")); !errors.Is(err, tcc.ErrDuplicate) {
				t.Fatalf("duplicate Begin %d: %v, want ErrDuplicate", i, err)
			}
			// A lone autocommit statement next, likely on the same
			// connection: it must be durable on its own.
			gid := fmt.Sprintf("after-%02d", i)
			if _, won, err := decideAs(a, "A", gid, tcc.Commit, 0); err != nil || !won {
				t.Fatalf("decide %s: won=%v err=%v", gid, won, err)
			}
			tx, err := b.GetTransaction(ctx, gid)
			if err != nil || tx.State != tcc.StateCommitting {
				t.Fatalf("%s seen from another store after its decision: err=%v tx=%+v", gid, err, tx)
			}
		}
		tx, err := b.GetTransaction(ctx, "taken")
		if err != nil || len(tx.Branches) != 1 || tx.Branches[0].BranchID != "p" {
			t.Fatalf("the existing transaction changed: err=%v tx=%+v", err, tx)
		}
	})
}
