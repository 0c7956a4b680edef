package demo_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/demo"
	"github.com/settle-tcc/settle/internal/grpctest"
)

var (
	pay1500 = demo.AccountsPayload("alice", 1500)
	book2   = demo.InventoryPayload("book", 2)
)

func TestTryConfirmAccounts(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try("g1", "b1", pay1500), codes.OK, "")
		s := e.totals(t)
		if got := account(t, s, "alice"); got != (accountView{10000, 1500}) {
			t.Fatalf("after Try alice = %+v, want balance 10000 frozen 1500", got)
		}
		if got := e.fences(t, "g1"); got["accounts/b1"] != demo.StateTried {
			t.Fatalf("fence = %v", got)
		}
		grpctest.WantCode(t, e.confirm("g1", "b1", pay1500), codes.OK, "")
		s = e.totals(t)
		if got := account(t, s, "alice"); got != (accountView{8500, 0}) {
			t.Fatalf("after Confirm alice = %+v", got)
		}
		if got := account(t, s, demo.MerchantAccount); got != (accountView{1500, 0}) {
			t.Fatalf("after Confirm merchant = %+v", got)
		}
		if s.Balance != 10500 || s.Frozen != 0 {
			t.Fatalf("money total %d frozen %d, want 10500 and 0", s.Balance, s.Frozen)
		}
		if got := e.fences(t, "g1"); got["accounts/b1"] != demo.StateConfirmed {
			t.Fatalf("fence = %v", got)
		}
	})
}

func TestTryConfirmInventory(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try("g1", "b1", book2), codes.OK, "")
		if got := stock(t, e.totals(t), "book"); got != (demo.Stock{SKU: "book", Stock: 10, Reserved: 2}) {
			t.Fatalf("after Try book = %+v", got)
		}
		grpctest.WantCode(t, e.confirm("g1", "b1", book2), codes.OK, "")
		s := e.totals(t)
		if got := stock(t, s, "book"); got != (demo.Stock{SKU: "book", Stock: 8, Reserved: 0, Sold: 2}) {
			t.Fatalf("after Confirm book = %+v", got)
		}
		if s.Goods["book"] != 10 || s.Reserved != 0 {
			t.Fatalf("goods %v reserved %d", s.Goods, s.Reserved)
		}
	})
}

func TestTryCancel(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		before := e.totals(t)
		grpctest.WantCode(t, e.try("g1", "pay", pay1500), codes.OK, "")
		grpctest.WantCode(t, e.try("g1", "stock", book2), codes.OK, "")
		grpctest.WantCode(t, e.cancel("g1", "pay", pay1500), codes.OK, "")
		grpctest.WantCode(t, e.cancel("g1", "stock", book2), codes.OK, "")
		sameTotals(t, e.totals(t), before)
		f := e.fences(t, "g1")
		if f["accounts/pay"] != demo.StateCancelled || f["inventory/stock"] != demo.StateCancelled {
			t.Fatalf("fences = %v", f)
		}
	})
}

func TestRepeatedTryAppliesOnce(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		for range 3 {
			grpctest.WantCode(t, e.try("g1", "b1", pay1500), codes.OK, "")
		}
		if got := account(t, e.totals(t), "alice"); got.frozen != 1500 {
			t.Fatalf("frozen = %d after 3 identical Tries, want 1500", got.frozen)
		}
		// A Try repeated after Confirm still returns the first result.
		grpctest.WantCode(t, e.confirm("g1", "b1", pay1500), codes.OK, "")
		grpctest.WantCode(t, e.try("g1", "b1", pay1500), codes.OK, "")
		if got := account(t, e.totals(t), "alice"); got != (accountView{8500, 0}) {
			t.Fatalf("alice = %+v", got)
		}
	})
}

func TestRepeatedConfirmAppliesOnce(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try("g1", "b1", book2), codes.OK, "")
		for range 3 {
			grpctest.WantCode(t, e.confirm("g1", "b1", book2), codes.OK, "")
		}
		if got := stock(t, e.totals(t), "book"); got.Sold != 2 || got.Stock != 8 {
			t.Fatalf("book = %+v after 3 Confirms, want sold 2", got)
		}
	})
}

func TestRepeatedCancelAppliesOnce(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		// Freeze twice under different gids so that a second unfreeze of g1
		// would show up as frozen 1500 -> 0 instead of failing a guard.
		grpctest.WantCode(t, e.try("g1", "b1", pay1500), codes.OK, "")
		grpctest.WantCode(t, e.try("g2", "b1", pay1500), codes.OK, "")
		for range 3 {
			grpctest.WantCode(t, e.cancel("g1", "b1", pay1500), codes.OK, "")
		}
		if got := account(t, e.totals(t), "alice"); got != (accountView{10000, 1500}) {
			t.Fatalf("alice = %+v, want only g2's 1500 frozen", got)
		}
	})
}

func TestNullCompensation(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		before := e.totals(t)
		grpctest.WantCode(t, e.cancel("g1", "b1", pay1500), codes.OK, "")
		grpctest.WantCode(t, e.cancel("g1", "b1", pay1500), codes.OK, "")
		sameTotals(t, e.totals(t), before)
		if got := e.fences(t, "g1"); got["accounts/b1"] != demo.StateCancelled || len(got) != 1 {
			t.Fatalf("fences = %v, want one CANCELLED row", got)
		}
		// An unknown user needs no lookup to be compensated.
		grpctest.WantCode(t, e.cancel("g2", "b1", demo.AccountsPayload("nobody", 1)), codes.OK, "")
	})
}

func TestTryAfterCancelRefused(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		before := e.totals(t)
		grpctest.WantCode(t, e.cancel("g1", "b1", book2), codes.OK, "")
		grpctest.WantCode(t, e.try("g1", "b1", book2), codes.FailedPrecondition, "try after cancel")
		grpctest.WantCode(t, e.try("g1", "b1", book2), codes.FailedPrecondition, "try after cancel")
		sameTotals(t, e.totals(t), before)
		if got := e.fences(t, "g1"); got["inventory/b1"] != demo.StateCancelled {
			t.Fatalf("fences = %v", got)
		}
	})
}

func TestConfirmWithoutTryRefused(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		before := e.totals(t)
		grpctest.WantCode(t, e.confirm("g1", "b1", pay1500), codes.FailedPrecondition, "confirm without try")
		sameTotals(t, e.totals(t), before)
		if got := e.fences(t, "g1"); len(got) != 0 {
			t.Fatalf("fences = %v, want none", got)
		}
	})
}

func TestConfirmAfterCancelConflict(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		before := e.totals(t)
		grpctest.WantCode(t, e.try("g1", "b1", pay1500), codes.OK, "")
		grpctest.WantCode(t, e.cancel("g1", "b1", pay1500), codes.OK, "")
		grpctest.WantCode(t, e.confirm("g1", "b1", pay1500), codes.FailedPrecondition, "conflict")
		sameTotals(t, e.totals(t), before)
		// A null-compensated branch conflicts the same way.
		grpctest.WantCode(t, e.cancel("g2", "b1", pay1500), codes.OK, "")
		grpctest.WantCode(t, e.confirm("g2", "b1", pay1500), codes.FailedPrecondition, "conflict")
		sameTotals(t, e.totals(t), before)
	})
}

func TestCancelAfterConfirmConflict(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try("g1", "b1", book2), codes.OK, "")
		grpctest.WantCode(t, e.confirm("g1", "b1", book2), codes.OK, "")
		after := e.totals(t)
		grpctest.WantCode(t, e.cancel("g1", "b1", book2), codes.FailedPrecondition, "conflict")
		sameTotals(t, e.totals(t), after)
		if got := e.fences(t, "g1"); got["inventory/b1"] != demo.StateConfirmed {
			t.Fatalf("fences = %v", got)
		}
	})
}

func TestPayloadMismatchRefused(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		other := demo.AccountsPayload("alice", 2000)
		grpctest.WantCode(t, e.try("g1", "b1", pay1500), codes.OK, "")
		grpctest.WantCode(t, e.try("g1", "b1", other), codes.FailedPrecondition, "payload differs")
		grpctest.WantCode(t, e.confirm("g1", "b1", other), codes.FailedPrecondition, "payload differs")
		grpctest.WantCode(t, e.cancel("g1", "b1", other), codes.FailedPrecondition, "payload differs")
		if got := account(t, e.totals(t), "alice"); got != (accountView{10000, 1500}) {
			t.Fatalf("alice = %+v, want the first Try's 1500 frozen only", got)
		}
		// The first payload still confirms.
		grpctest.WantCode(t, e.confirm("g1", "b1", pay1500), codes.OK, "")
		if got := account(t, e.totals(t), "alice"); got != (accountView{8500, 0}) {
			t.Fatalf("alice = %+v", got)
		}
	})
}

func TestRefusedTryLeavesNoFence(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		before := e.totals(t)
		tooMuch := demo.AccountsPayload("bob", 1500) // bob has 500
		grpctest.WantCode(t, e.try("g1", "b1", tooMuch), codes.FailedPrecondition, "insufficient funds")
		grpctest.WantCode(t, e.try("g2", "b1", demo.InventoryPayload("book", 11)), codes.FailedPrecondition, "insufficient stock")
		grpctest.WantCode(t, e.try("g3", "b1", demo.AccountsPayload("nobody", 1)), codes.FailedPrecondition, "unknown account")
		grpctest.WantCode(t, e.try("g4", "b1", demo.InventoryPayload("lamp", 1)), codes.FailedPrecondition, "unknown sku")
		sameTotals(t, e.totals(t), before)
		for _, gid := range []string{"g1", "g2", "g3", "g4"} {
			if got := e.fences(t, gid); len(got) != 0 {
				t.Fatalf("refused Try %s left fences %v", gid, got)
			}
		}
		// The coordinator's Cancel is then a null compensation.
		grpctest.WantCode(t, e.cancel("g1", "b1", tooMuch), codes.OK, "")
		sameTotals(t, e.totals(t), before)
		if got := e.fences(t, "g1"); got["accounts/b1"] != demo.StateCancelled {
			t.Fatalf("fences = %v", got)
		}
		// A refused Try may be retried and succeed once funds allow it; here
		// bob can afford 500 exactly.
		exact := demo.AccountsPayload("bob", 500)
		grpctest.WantCode(t, e.try("g5", "b1", exact), codes.OK, "")
		grpctest.WantCode(t, e.try("g6", "b1", demo.AccountsPayload("bob", 1)), codes.FailedPrecondition, "insufficient funds")
	})
}

func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec, demo.Accounts)
		before := e.totals(t)
		cases := []struct {
			name, gid, branch string
			payload           []byte
		}{
			{"empty payload", "g1", "b1", nil},
			{"not json", "g1", "b1", []byte("freeze 15 dollars")},
			{"trailing data", "g1", "b1", []byte(`{"resource":"accounts","user":"alice","amount":1}{}`)},
			{"unknown field", "g1", "b1", []byte(`{"resource":"accounts","user":"alice","amount":1,"extra":1}`)},
			{"no resource", "g1", "b1", []byte(`{"user":"alice","amount":1}`)},
			{"unknown resource", "g1", "b1", []byte(`{"resource":"loyalty","user":"alice","amount":1}`)},
			{"negative amount", "g1", "b1", demo.AccountsPayload("alice", -5)},
			{"zero amount", "g1", "b1", demo.AccountsPayload("alice", 0)},
			{"huge amount", "g1", "b1", demo.AccountsPayload("alice", 1<<62)},
			{"amount overflow", "g1", "b1", []byte(`{"resource":"accounts","user":"alice","amount":99999999999999999999}`)},
			{"empty user", "g1", "b1", demo.AccountsPayload("", 5)},
			{"long user", "g1", "b1", demo.AccountsPayload(string(make([]byte, 65)), 5)},
			{"mixed fields", "g1", "b1", []byte(`{"resource":"accounts","user":"alice","amount":1,"qty":1}`)},
			{"not served", "g1", "b1", book2},
			{"empty gid", "", "b1", pay1500},
			{"bad gid", "g 1", "b1", pay1500},
			{"long gid", string(make([]byte, 129)), "b1", pay1500},
			{"empty branch", "g1", "", pay1500},
			{"long branch", "g1", string(make([]byte, 65)), pay1500},
		}
		for _, tc := range cases {
			grpctest.WantCode(t, e.try(tc.gid, tc.branch, tc.payload), codes.InvalidArgument, "")
			grpctest.WantCode(t, e.confirm(tc.gid, tc.branch, tc.payload), codes.InvalidArgument, "")
			grpctest.WantCode(t, e.cancel(tc.gid, tc.branch, tc.payload), codes.InvalidArgument, "")
		}
		sameTotals(t, e.totals(t), before)
		if fs, err := demo.Fences(t.Context(), e.db, ""); err != nil || len(fs) != 0 {
			t.Fatalf("Fences = %v, %v; want none", fs, err)
		}
	})
}

func TestMaxLengthIDs(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		gid := "G-" + string(repeat('x', 126))
		branch := "b:" + string(repeat('y', 62))
		grpctest.WantCode(t, e.try(gid, branch, pay1500), codes.OK, "")
		grpctest.WantCode(t, e.confirm(gid, branch, pay1500), codes.OK, "")
		// Ids compare byte for byte: a gid differing only in case is
		// another transaction.
		grpctest.WantCode(t, e.confirm("g-"+string(repeat('x', 126)), branch, pay1500), codes.FailedPrecondition, "confirm without try")
	})
}

func repeat(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}
