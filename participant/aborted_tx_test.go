package participant_test

import (
	"context"
	"strings"
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
