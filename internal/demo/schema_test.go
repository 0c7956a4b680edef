package demo_test

import (
	"context"
	"testing"

	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/demo"
)

func TestMigrateAndSeedAreRepeatable(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		ctx := context.Background()
		db, dialect, err := database.Open(spec)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = database.Close(db) })
		for range 2 {
			if err := demo.Migrate(ctx, db, dialect); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			if err := demo.Seed(ctx, db); err != nil {
				t.Fatalf("Seed: %v", err)
			}
		}
		s, err := demo.Totals(ctx, db)
		if err != nil {
			t.Fatalf("Totals: %v", err)
		}
		if len(s.Accounts) != 3 || s.Balance != 10500 || len(s.Stock) != 2 || s.Goods["book"] != 10 || s.Goods["pen"] != 100 {
			t.Fatalf("seeded snapshot = %+v", s)
		}
		// Seed leaves non-empty tables alone.
		if err := db.Exec("UPDATE demo_account SET balance = 1 WHERE name = 'alice'").Error; err != nil {
			t.Fatalf("update: %v", err)
		}
		if err := demo.Seed(ctx, db); err != nil {
			t.Fatalf("Seed: %v", err)
		}
		s, _ = demo.Totals(ctx, db)
		if account(t, s, "alice").balance != 1 {
			t.Fatal("Seed overwrote an existing account")
		}
	})
}

func TestCheckConstraints(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		for _, q := range []string{
			"UPDATE demo_account SET frozen = -1 WHERE name = 'alice'",
			"UPDATE demo_account SET balance = -1 WHERE name = 'merchant'",
			"UPDATE demo_account SET frozen = balance + 1 WHERE name = 'alice'",
			"UPDATE demo_stock SET reserved = -1 WHERE sku = 'book'",
			"UPDATE demo_stock SET sold = -1 WHERE sku = 'book'",
			"UPDATE demo_stock SET stock = -1, reserved = 0 WHERE sku = 'book'",
			"UPDATE demo_stock SET reserved = stock + 1 WHERE sku = 'book'",
		} {
			if err := e.db.Exec(q).Error; err == nil {
				t.Errorf("%s: accepted, want a CHECK violation", q)
			}
		}
	})
}

func TestMigrateUnknownDialect(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t, dbtest.NewSQLite(t))
	if err := demo.Migrate(context.Background(), db, "oracle"); err == nil {
		t.Fatal("Migrate accepted an unknown dialect")
	}
}
