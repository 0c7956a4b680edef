package participant_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/participant"
)

// reserveAfterDuplicate is a Try handler that first inserts a row that
// exists (an insert-first idempotency key of its own, say) and goes on
// when that is a duplicate key, through a savepoint when savepoint is set.
func reserveAfterDuplicate(savepoint bool) option {
	return func(cfg *participant.Config) {
		next := cfg.Try
		cfg.Try = func(ctx context.Context, tx *gorm.DB, r participant.Request) error {
			if savepoint {
				if err := tx.SavePoint("dup").Error; err != nil {
					return err
				}
			}
			err := tx.Exec("INSERT INTO sdk_stock (id, available, reserved, sold) VALUES ('x', 0, 0, 0)").Error
			if !participant.IsDuplicateKey(err) {
				return err
			}
			if savepoint {
				if err := tx.RollbackTo("dup").Error; err != nil {
					return err
				}
			}
			return next(ctx, tx, r)
		}
	}
}

// TestHandlerGoesOnAfterDuplicate: a handler that goes on after a failed
// statement of its own. On PostgreSQL the error has aborted the local
// transaction, so the call must fail with nothing committed (neither the
// reservation nor the fence row), and a repeat fails the same way; on
// MySQL and SQLite only the statement failed and the call succeeds.
func TestHandlerGoesOnAfterDuplicate(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec, reserveAfterDuplicate(false))
		err := e.try(t, "g1", "b1", "3")
		if !strings.HasPrefix(spec, "postgres:") {
			grpctest.WantCode(t, err, codes.OK, "")
			e.wantState(t, "g1", "b1", participant.StateTried)
			return
		}
		for range 2 {
			if err == nil {
				t.Fatal("Try succeeded on PostgreSQL after a statement of its transaction failed")
			}
			if s := e.stock(t); s != (stock{100, 0, 0}) {
				t.Fatalf("a failed Try changed the stock: %+v", s)
			}
			if r, found := e.record(t, "g1", "b1"); found {
				t.Fatalf("a failed Try left a fence row: %+v", r)
			}
			err = e.try(t, "g1", "b1", "3")
		}
	})
}

// TestHandlerSavepointAfterDuplicate: the same handler with its insert in
// a savepoint succeeds on every database, once, and its repeat is answered
// by the fence (whose own duplicate never aborts the transaction: on
// PostgreSQL its insert says ON CONFLICT DO NOTHING).
func TestHandlerSavepointAfterDuplicate(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec, reserveAfterDuplicate(true))
		for range 3 {
			grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		}
		if s := e.stock(t); s != (stock{97, 3, 0}) {
			t.Fatalf("stock = %+v, want one reservation", s)
		}
		if n := e.runs(t, "try", "g1", "b1"); n != 1 {
			t.Fatalf("the Try handler committed %d times, want 1", n)
		}
		e.wantState(t, "g1", "b1", participant.StateTried)
	})
}

// TestFenceRetriesSerializationFailures: on PostgreSQL at SERIALIZABLE
// (as CockroachDB runs every transaction), concurrent Tries of different
// branches all reserve from the same stock row; every one but the first
// to commit fails with a serialization failure (40001) and is run again
// from the start (its fence row with it) until it commits. All succeed,
// each reservation is made once, and the handler ran more often than it
// committed: the retries happened.
func TestFenceRetriesSerializationFailures(t *testing.T) {
	t.Parallel()
	spec := dbtest.NewPostgres(t)
	admin := dbtest.Open(t, spec)
	var name string
	if err := admin.Raw("SELECT current_database()").Scan(&name).Error; err != nil {
		t.Fatal(err)
	}
	if err := admin.Exec("ALTER DATABASE " + name + " SET default_transaction_isolation = 'serializable'").Error; err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	e := setup(t, spec, func(cfg *participant.Config) {
		next := cfg.Try
		cfg.Try = func(ctx context.Context, tx *gorm.DB, r participant.Request) error {
			calls.Add(1)
			return next(ctx, tx, r)
		}
	})
	var isolation string
	if err := e.db.Raw("SHOW transaction_isolation").Scan(&isolation).Error; err != nil || isolation != "serializable" {
		t.Fatalf("sessions run at %q (%v), want serializable", isolation, err)
	}
	const n = 8
	var i atomic.Int64
	got := burst(n, func() error {
		k := i.Add(1)
		return e.try(t, fmt.Sprintf("g%d", k), "b1", "1")
	})
	if got[codes.OK] != n {
		t.Fatalf("%d concurrent Tries at SERIALIZABLE: codes %v, want %d OK", n, got, n)
	}
	if s := e.stock(t); s != (stock{100 - n, n, 0}) {
		t.Fatalf("stock = %+v, want %d reserved once each", s, n)
	}
	if c := calls.Load(); c <= n {
		t.Fatalf("the Try handler ran %d times for %d Tries: no serialization failure was provoked", c, n)
	} else {
		t.Logf("the Try handler ran %d times for %d committed Tries (serialization failures retried)", c, n)
	}
}
