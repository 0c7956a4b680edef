package participant_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/participant"
)

func TestTryConfirm(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		if s := e.stock(t); s != (stock{97, 3, 0}) {
			t.Fatalf("after Try stock = %+v", s)
		}
		e.wantState(t, "g1", "b1", participant.StateTried)
		grpctest.WantCode(t, e.confirm(t, "g1", "b1", "3"), codes.OK, "")
		if s := e.stock(t); s != (stock{97, 0, 3}) {
			t.Fatalf("after Confirm stock = %+v", s)
		}
		e.wantState(t, "g1", "b1", participant.StateConfirmed)
	})
}

func TestTryCancel(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.cancel(t, "g1", "b1", "3"), codes.OK, "")
		if s := e.stock(t); s != (stock{100, 0, 0}) {
			t.Fatalf("stock = %+v", s)
		}
		r, _ := e.record(t, "g1", "b1")
		if r.State != participant.StateCancelled || !r.Tried {
			t.Fatalf("record = %+v, want CANCELLED after a Try", r)
		}
	})
}

func TestRepeatedTryRunsHandlerOnce(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		for range 3 {
			grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		}
		if n := e.runs(t, "try", "g1", "b1"); n != 1 {
			t.Fatalf("Try handler ran %d times", n)
		}
		// A Try repeated after Confirm still returns the first result.
		grpctest.WantCode(t, e.confirm(t, "g1", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		if s := e.stock(t); s != (stock{97, 0, 3}) {
			t.Fatalf("stock = %+v", s)
		}
	})
}

func TestRepeatedConfirmRunsHandlerOnce(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		for range 3 {
			grpctest.WantCode(t, e.confirm(t, "g1", "b1", "3"), codes.OK, "")
		}
		if n := e.runs(t, "confirm", "g1", "b1"); n != 1 {
			t.Fatalf("Confirm handler ran %d times", n)
		}
		if s := e.stock(t); s != (stock{97, 0, 3}) {
			t.Fatalf("stock = %+v", s)
		}
	})
}

func TestRepeatedCancelRunsHandlerOnce(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.try(t, "g2", "b1", "3"), codes.OK, "")
		for range 3 {
			grpctest.WantCode(t, e.cancel(t, "g1", "b1", "3"), codes.OK, "")
		}
		if n := e.runs(t, "cancel", "g1", "b1"); n != 1 {
			t.Fatalf("Cancel handler ran %d times", n)
		}
		if s := e.stock(t); s != (stock{97, 3, 0}) {
			t.Fatalf("stock = %+v, want only g2's 3 reserved", s)
		}
	})
}

func TestNullCompensation(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.cancel(t, "g1", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.cancel(t, "g1", "b1", "3"), codes.OK, "")
		if n := e.runs(t, "cancel", "g1", "b1"); n != 0 {
			t.Fatalf("Cancel handler ran %d times for a null compensation", n)
		}
		r, ok := e.record(t, "g1", "b1")
		if !ok || r.State != participant.StateCancelled || r.Tried {
			t.Fatalf("record = %+v, want CANCELLED with no Try", r)
		}
		if s := e.stock(t); s != (stock{100, 0, 0}) {
			t.Fatalf("stock = %+v", s)
		}
	})
}

func TestTryAfterCancelRefused(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.cancel(t, "g1", "b1", "3"), codes.OK, "")
		for range 2 {
			grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.FailedPrecondition, "try after cancel")
		}
		// Even with another payload the answer is "cancelled first".
		grpctest.WantCode(t, e.try(t, "g1", "b1", "4"), codes.FailedPrecondition, "try after cancel")
		if n := e.runs(t, "try", "g1", "b1"); n != 0 {
			t.Fatalf("Try handler ran %d times after Cancel", n)
		}
		if s := e.stock(t); s != (stock{100, 0, 0}) {
			t.Fatalf("stock = %+v", s)
		}
		e.wantState(t, "g1", "b1", participant.StateCancelled)
	})
}

// TestRepeatedTryAfterTriedThenCancelled (S7, found by the fault suite): a
// Try that was applied, then cancelled, then delivered again (a retry whose
// first reply was lost) is refused without reserving again, and the
// message says the branch was tried and then cancelled.
func TestRepeatedTryAfterTriedThenCancelled(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.cancel(t, "g1", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.FailedPrecondition, "tried and then cancelled")
		if n := e.runs(t, "try", "g1", "b1"); n != 1 {
			t.Fatalf("Try handler ran %d times, want 1", n)
		}
		if s := e.stock(t); s != (stock{100, 0, 0}) {
			t.Fatalf("stock = %+v: the repeat reserved again", s)
		}
		e.wantState(t, "g1", "b1", participant.StateCancelled)
	})
}

func TestConfirmAfterCancelConflict(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.cancel(t, "g1", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.confirm(t, "g1", "b1", "3"), codes.FailedPrecondition, "conflict")
		// A null-compensated branch conflicts the same way.
		grpctest.WantCode(t, e.cancel(t, "g2", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.confirm(t, "g2", "b1", "3"), codes.FailedPrecondition, "conflict")
		if n := e.runs(t, "confirm", "g1", "b1") + e.runs(t, "confirm", "g2", "b1"); n != 0 {
			t.Fatalf("Confirm handler ran %d times", n)
		}
		if s := e.stock(t); s != (stock{100, 0, 0}) {
			t.Fatalf("stock = %+v", s)
		}
	})
}

func TestCancelAfterConfirmConflict(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.confirm(t, "g1", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.cancel(t, "g1", "b1", "3"), codes.FailedPrecondition, "conflict")
		if n := e.runs(t, "cancel", "g1", "b1"); n != 0 {
			t.Fatalf("Cancel handler ran %d times", n)
		}
		if s := e.stock(t); s != (stock{97, 0, 3}) {
			t.Fatalf("stock = %+v", s)
		}
		e.wantState(t, "g1", "b1", participant.StateConfirmed)
	})
}

func TestConfirmWithoutTryRefused(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.confirm(t, "g1", "b1", "3"), codes.FailedPrecondition, "confirm without try")
		if _, ok := e.record(t, "g1", "b1"); ok {
			t.Fatal("Confirm without Try left a fence row")
		}
	})
}

func TestPayloadMismatchRefused(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		grpctest.WantCode(t, e.try(t, "g1", "b1", "5"), codes.FailedPrecondition, "payload differs")
		grpctest.WantCode(t, e.confirm(t, "g1", "b1", "5"), codes.FailedPrecondition, "payload differs")
		grpctest.WantCode(t, e.cancel(t, "g1", "b1", "5"), codes.FailedPrecondition, "payload differs")
		if n := e.runs(t, "try", "g1", "b1"); n != 1 {
			t.Fatalf("Try handler ran %d times", n)
		}
		if s := e.stock(t); s != (stock{97, 3, 0}) {
			t.Fatalf("stock = %+v, want the first Try's 3 only", s)
		}
		grpctest.WantCode(t, e.confirm(t, "g1", "b1", "3"), codes.OK, "")
		r, _ := e.record(t, "g1", "b1")
		if string(r.Payload) != "3" || len(r.PayloadDigest) != 64 {
			t.Fatalf("record = %+v", r)
		}
	})
}

func TestRefusedTryLeavesNoFence(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try(t, "g1", "b1", "101"), codes.FailedPrecondition, "out of stock")
		if _, ok := e.record(t, "g1", "b1"); ok {
			t.Fatal("refused Try left a fence row")
		}
		// The coordinator's Cancel is then a null compensation, and the Try
		// stays refused.
		grpctest.WantCode(t, e.cancel(t, "g1", "b1", "101"), codes.OK, "")
		grpctest.WantCode(t, e.try(t, "g1", "b1", "101"), codes.FailedPrecondition, "try after cancel")
		if s := e.stock(t); s != (stock{100, 0, 0}) {
			t.Fatalf("stock = %+v", s)
		}
	})
}

func TestInvalidRequests(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		cases := []struct{ name, gid, branch, payload string }{
			{"bad payload", "g1", "b1", "three"},
			{"zero", "g1", "b1", "0"},
			{"empty gid", "", "b1", "3"},
			{"bad gid", "g 1", "b1", "3"},
			{"long gid", string(make([]byte, 129)), "b1", "3"},
			{"empty branch", "g1", "", "3"},
			{"long branch", "g1", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "3"},
		}
		for _, tc := range cases {
			grpctest.WantCode(t, e.try(t, tc.gid, tc.branch, tc.payload), codes.InvalidArgument, "")
			grpctest.WantCode(t, e.confirm(t, tc.gid, tc.branch, tc.payload), codes.InvalidArgument, "")
			grpctest.WantCode(t, e.cancel(t, tc.gid, tc.branch, tc.payload), codes.InvalidArgument, "")
		}
		if rs, err := e.p.Records(ctxT(t), participant.Query{}); err != nil || len(rs) != 0 {
			t.Fatalf("Records = %v, %v; want none", rs, err)
		}
	})
}

// A handler error that is neither a refusal nor a status is answered with
// UNAVAILABLE (retry), without its text, and rolls back the fence row.
func TestHandlerFailureIsTransient(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		fail := true
		e := setup(t, spec, func(c *participant.Config) {
			inner := c.Confirm
			c.Confirm = func(ctx context.Context, tx *gorm.DB, r participant.Request) error {
				if fail {
					return errors.New("secret database detail")
				}
				return inner(ctx, tx, r)
			}
		})
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		err := e.confirm(t, "g1", "b1", "3")
		grpctest.WantCode(t, err, codes.Unavailable, "")
		if got := err.Error(); strings.Contains(got, "secret") {
			t.Fatalf("status leaks the handler's error: %v", got)
		}
		e.wantState(t, "g1", "b1", participant.StateTried)
		fail = false
		grpctest.WantCode(t, e.confirm(t, "g1", "b1", "3"), codes.OK, "")
		e.wantState(t, "g1", "b1", participant.StateConfirmed)
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t, dbtest.NewSQLite(t))
	h := func(context.Context, *gorm.DB, participant.Request) error { return nil }
	ok := participant.Config{DB: db, Try: h, Confirm: h, Cancel: h}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mut := range map[string]func(*participant.Config){
		"no db":           func(c *participant.Config) { c.DB = nil },
		"no try":          func(c *participant.Config) { c.Try = nil },
		"bad table":       func(c *participant.Config) { c.Table = "fence; DROP TABLE x" },
		"short retention": func(c *participant.Config) { c.Retention = time.Minute },
		"negative check":  func(c *participant.Config) { c.CheckBackAfter = -time.Second },
	} {
		c := ok
		mut(&c)
		if _, err := participant.New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMigrateIsRepeatableAndTableNameable(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		db := dbtest.Open(t, spec)
		ctx := ctxT(t)
		for range 2 {
			if err := participant.Migrate(ctx, db); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			if err := participant.MigrateTable(ctx, db, "payments_fence"); err != nil {
				t.Fatalf("MigrateTable: %v", err)
			}
		}
		if err := participant.MigrateTable(ctx, db, "x y"); err == nil {
			t.Fatal("MigrateTable accepted a bad name")
		}
		if rs, err := participant.ListRecords(ctx, db, participant.Query{Table: "payments_fence"}); err != nil || len(rs) != 0 {
			t.Fatalf("ListRecords = %v, %v", rs, err)
		}
	})
}
