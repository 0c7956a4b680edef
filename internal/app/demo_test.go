package app_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/demo"
	"github.com/settle-tcc/settle/internal/grpctest"
)

// startDemo serves the demo participants on loopback over their own
// database (a second fresh database of the same backend).
func startDemo(t *testing.T, newDB func(testing.TB) string) (addr string, totals func() demo.Snapshot, exec func(string, ...any)) {
	t.Helper()
	spec := newDB(t)
	db, dialect, err := database.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	ctx := context.Background()
	if err := demo.Migrate(ctx, db, dialect); err != nil {
		t.Fatal(err)
	}
	if err := demo.Seed(ctx, db); err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	tccv1.RegisterParticipantServiceServer(srv, demo.NewServer(db, nil))
	addr = grpctest.Serve(t, srv)
	totals = func() demo.Snapshot {
		s, err := demo.Totals(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exec = func(q string, args ...any) {
		if err := db.Exec(q, args...).Error; err != nil {
			t.Fatal(err)
		}
	}
	return addr, totals, exec
}

func account(s demo.Snapshot, name string) demo.Account {
	for _, a := range s.Accounts {
		if a.Name == name {
			return a
		}
	}
	return demo.Account{}
}

func stock(s demo.Snapshot, sku string) demo.Stock {
	for _, st := range s.Stock {
		if st.SKU == sku {
			return st
		}
	}
	return demo.Stock{}
}

// TestDemoOrders: the quickstart's two orders end to end through the client
// SDK, the coordinator and the demo participants with their own database:
// a committed order moves money and stock once; an order whose second Try
// is refused, and one whose first Try is refused, are rolled back, both
// branches are cancelled and every balance is restored.
func TestDemoOrders(t *testing.T) {
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", DB: be.New(t)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
			partAddr, totals, exec := startDemo(t, be.New)
			c, err := client.New(a.Addr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			ctx := ctxT(t)
			before := totals()

			res, err := demo.PlaceOrder(ctx, c, demo.Order{GID: "order-ok", User: "alice", SKU: "book", Qty: 2, Participant: partAddr, Timeout: 10 * time.Second})
			if err != nil || !res.Committed {
				t.Fatalf("order: %+v %v", res, err)
			}
			eventually(t, "order committed", func() bool {
				tx, err := c.Coordinator().GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "order-ok"})
				return err == nil && tx.GetTransaction().GetState() == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED
			})
			after := totals()
			price, _ := demo.Price("book")
			if got, want := account(after, "alice").Balance, account(before, "alice").Balance-2*price; got != want {
				t.Fatalf("alice balance %d, want %d", got, want)
			}
			if got := stock(after, "book").Sold; got != 2 {
				t.Fatalf("books sold %d, want 2", got)
			}
			if after.Balance != before.Balance || after.Frozen != 0 || after.Reserved != 0 {
				t.Fatalf("money not conserved or reservations left: before %+v after %+v", before, after)
			}

			// The inventory Try is refused after the accounts Try froze money.
			exec("UPDATE demo_stock SET stock = sold + reserved WHERE sku = ?", "pen")
			before = totals()
			res, err = demo.PlaceOrder(ctx, c, demo.Order{GID: "order-refused", User: "alice", SKU: "pen", Qty: 1, Participant: partAddr, Timeout: 10 * time.Second})
			if err != nil || res.Committed || res.Reason == "" {
				t.Fatalf("refused order: %+v %v", res, err)
			}
			tx, err := c.Coordinator().GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "order-refused"})
			if err != nil {
				t.Fatal(err)
			}
			if tx.GetTransaction().GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTED || len(tx.GetTransaction().GetBranches()) != 2 {
				t.Fatalf("refused order: %v", tx.GetTransaction())
			}
			for _, b := range tx.GetTransaction().GetBranches() {
				if b.GetState() != tccv1.BranchState_BRANCH_STATE_CANCELLED {
					t.Fatalf("branch %s: %v", b.GetBranchId(), b.GetState())
				}
			}
			after = totals()
			if account(after, "alice") != account(before, "alice") || after.Frozen != 0 || after.Reserved != 0 || after.Balance != before.Balance {
				t.Fatalf("balances not restored: before %+v after %+v", account(before, "alice"), account(after, "alice"))
			}

			// The first Try is refused (bob cannot pay): both branches were
			// registered with Begin, so both are cancelled, the untried
			// inventory branch as a null compensation, and nothing moves.
			before = totals()
			res, err = demo.PlaceOrder(ctx, c, demo.Order{GID: "order-poor", User: "bob", SKU: "book", Qty: 1, Participant: partAddr, Timeout: 10 * time.Second})
			if err != nil || res.Committed || res.Reason == "" {
				t.Fatalf("refused order: %+v %v", res, err)
			}
			branches := res.Transaction.GetBranches()
			if res.Transaction.GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTED || len(branches) != 2 {
				t.Fatalf("order-poor after rollback: %v", res.Transaction)
			}
			for _, b := range branches {
				if b.GetState() != tccv1.BranchState_BRANCH_STATE_CANCELLED {
					t.Fatalf("order-poor branch %s: %v", b.GetBranchId(), b.GetState())
				}
			}
			if after := totals(); after.Balance != before.Balance || after.Frozen != 0 || after.Reserved != 0 || stock(after, "book") != stock(before, "book") {
				t.Fatalf("order-poor moved something: before %+v after %+v", before, after)
			}
		})
	}
}
