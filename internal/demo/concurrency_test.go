package demo_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/demo"
	"github.com/settle-tcc/settle/internal/grpctest"
)

func count(cs []codes.Code) map[codes.Code]int {
	m := map[codes.Code]int{}
	for _, c := range cs {
		m[c]++
	}
	return m
}

func TestConcurrentDuplicateTryThenCancel(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		before := e.totals(t)
		got := count(grpctest.Burst(50, func() error { return e.try("g1", "b1", pay1500) }))
		if got[codes.OK] != 50 {
			t.Fatalf("50 identical Tries: codes %v, want 50 OK", got)
		}
		if a := account(t, e.totals(t), "alice"); a != (accountView{10000, 1500}) {
			t.Fatalf("alice = %+v, want 1500 frozen once", a)
		}
		got = count(grpctest.Burst(50, func() error { return e.cancel("g1", "b1", pay1500) }))
		if got[codes.OK] != 50 {
			t.Fatalf("50 identical Cancels: codes %v, want 50 OK", got)
		}
		sameTotals(t, e.totals(t), before)
		if f := e.fences(t, "g1"); f["accounts/b1"] != demo.StateCancelled {
			t.Fatalf("fences = %v", f)
		}
	})
}

// When the first of many identical Tries is refused, its rollback lets the
// waiting duplicates race for the key, which InnoDB resolves by picking
// deadlock victims; the retry must hide them.
func TestConcurrentDuplicateRefusedTry(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		before := e.totals(t)
		tooMuch := demo.AccountsPayload("bob", 600)
		got := count(grpctest.Burst(50, func() error { return e.try("g1", "b1", tooMuch) }))
		if got[codes.FailedPrecondition] != 50 {
			t.Fatalf("50 refused Tries: codes %v, want 50 FailedPrecondition", got)
		}
		sameTotals(t, e.totals(t), before)
		if f := e.fences(t, "g1"); len(f) != 0 {
			t.Fatalf("fences = %v, want none", f)
		}
	})
}

func TestConcurrentCancelBeforeTry(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		before := e.totals(t)
		got := count(grpctest.Burst(50, func() error { return e.cancel("g1", "b1", book2) }))
		if got[codes.OK] != 50 {
			t.Fatalf("50 null compensations: codes %v", got)
		}
		got = count(grpctest.Burst(50, func() error { return e.try("g1", "b1", book2) }))
		if got[codes.FailedPrecondition] != 50 {
			t.Fatalf("50 hanging Tries: codes %v, want all refused", got)
		}
		sameTotals(t, e.totals(t), before)
	})
}

// Try and Cancel racing for a fresh branch: either the Cancel finds nothing
// (null compensation, then every Try is refused) or it releases what the
// Try reserved. Either way nothing stays reserved.
func TestConcurrentTryAndCancel(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		before := e.totals(t)
		for i := range 10 {
			gid := fmt.Sprintf("g%d", i)
			got := count(grpctest.Burst(20, func() error {
				if rand.IntN(2) == 0 {
					return e.try(gid, "b1", book2)
				}
				if err := e.cancel(gid, "b1", book2); err != nil {
					return fmt.Errorf("cancel: %w", err)
				}
				return nil
			}))
			if got[codes.OK]+got[codes.FailedPrecondition] != 20 {
				t.Fatalf("%s: codes %v", gid, got)
			}
			// Deliver one more Cancel, as the coordinator would retry it.
			grpctest.WantCode(t, e.cancel(gid, "b1", book2), codes.OK, "")
		}
		sameTotals(t, e.totals(t), before)
	})
}

// Confirm and Cancel racing for a tried branch: exactly one kind wins; the
// losers get the conflict, the winners' duplicates get OK.
func TestConcurrentConfirmAndCancel(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try("g1", "b1", pay1500), codes.OK, "")
		var mu sync.Mutex
		okBy := map[string]int{}
		grpctest.Burst(40, func() error {
			kind, call := "confirm", e.confirm
			if rand.IntN(2) == 0 {
				kind, call = "cancel", e.cancel
			}
			err := call("g1", "b1", pay1500)
			if err == nil {
				mu.Lock()
				okBy[kind]++
				mu.Unlock()
			} else if status.Code(err) != codes.FailedPrecondition {
				t.Errorf("%s: %v", kind, err)
			}
			return err
		})
		if len(okBy) != 1 {
			t.Fatalf("successes by kind %v, want exactly one kind", okBy)
		}
		a := account(t, e.totals(t), "alice")
		switch f := e.fences(t, "g1")["accounts/b1"]; {
		case okBy["confirm"] > 0 && f == demo.StateConfirmed && a == (accountView{8500, 0}):
		case okBy["cancel"] > 0 && f == demo.StateCancelled && a == (accountView{10000, 0}):
		default:
			t.Fatalf("winners %v, fence %s, alice %+v: inconsistent", okBy, f, a)
		}
	})
}

// branchRun is one branch of the conservation test and what was observed.
type branchRun struct {
	gid, id   string
	payload   demo.Payload
	raw       []byte
	confirmed bool // some Confirm returned OK
	cancelled bool // some Cancel returned OK
}

func TestConservation(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		before := e.totals(t)
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 42))

		users := []string{"alice", "bob", demo.MerchantAccount}
		skus := []string{"book", "pen"}
		runs := make([]*branchRun, 300)
		scripts := make([][]string, len(runs))
		for i := range runs {
			r := &branchRun{gid: fmt.Sprintf("g%03d", i/2), id: fmt.Sprintf("b%d", i%2)}
			if rng.IntN(2) == 0 {
				r.raw = demo.AccountsPayload(users[rng.IntN(len(users))], 1+rng.Int64N(3000))
			} else {
				r.raw = demo.InventoryPayload(skus[rng.IntN(len(skus))], 1+rng.Int64N(3))
			}
			p, err := demo.ParsePayload(r.raw)
			if err != nil {
				t.Fatalf("ParsePayload: %v", err)
			}
			r.payload = p
			runs[i] = r
			// Any order, with duplicates: retries and reordering.
			ops := []string{"try", "confirm", "cancel"}
			script := make([]string, 1+rng.IntN(5))
			for j := range script {
				script[j] = ops[rng.IntN(len(ops))]
			}
			scripts[i] = script
		}

		var wg sync.WaitGroup
		work := make(chan int)
		for range 16 {
			wg.Go(func() {
				for i := range work {
					r := runs[i]
					for _, op := range scripts[i] {
						var err error
						switch op {
						case "try":
							err = e.try(r.gid, r.id, r.raw)
						case "confirm":
							err = e.confirm(r.gid, r.id, r.raw)
							r.confirmed = r.confirmed || err == nil
						case "cancel":
							err = e.cancel(r.gid, r.id, r.raw)
							r.cancelled = r.cancelled || err == nil
						}
						if c := status.Code(err); c != codes.OK && c != codes.FailedPrecondition {
							t.Errorf("%s %s/%s: %v", op, r.gid, r.id, err)
						}
					}
				}
			})
		}
		for i := range runs {
			work <- i
		}
		close(work)
		wg.Wait()

		mid := e.totals(t)
		if mid.Balance != before.Balance {
			t.Fatalf("money total %d, want %d", mid.Balance, before.Balance)
		}
		for sku, n := range before.Goods {
			if mid.Goods[sku] != n {
				t.Fatalf("goods %s = %d, want %d", sku, mid.Goods[sku], n)
			}
		}

		// Finish every branch as the coordinator would: cancel whatever is
		// undecided.
		for _, r := range runs {
			if !r.confirmed {
				if err := e.cancel(r.gid, r.id, r.raw); err != nil {
					t.Fatalf("final cancel %s/%s: %v", r.gid, r.id, err)
				}
				r.cancelled = true
			}
		}

		after := e.totals(t)
		if after.Balance != before.Balance || after.Frozen != 0 || after.Reserved != 0 {
			t.Fatalf("after: money %d (want %d), frozen %d, reserved %d", after.Balance, before.Balance, after.Frozen, after.Reserved)
		}
		for sku, n := range before.Goods {
			if after.Goods[sku] != n {
				t.Fatalf("goods %s = %d, want %d", sku, after.Goods[sku], n)
			}
		}

		// At most once: the effects equal the sum of the confirmed branches.
		fences, err := demo.Fences(context.Background(), e.db, "")
		if err != nil {
			t.Fatalf("Fences: %v", err)
		}
		state := map[string]string{}
		for _, f := range fences {
			state[f.GID+"/"+f.BranchID] = f.State
		}
		paid := map[string]int64{}
		sold := map[string]int64{}
		var merchantIn int64
		for _, r := range runs {
			s := state[r.gid+"/"+r.id]
			if r.confirmed && r.cancelled {
				t.Fatalf("%s/%s both confirmed and cancelled", r.gid, r.id)
			}
			if r.confirmed != (s == demo.StateConfirmed) {
				t.Fatalf("%s/%s: confirmed=%t but fence %q", r.gid, r.id, r.confirmed, s)
			}
			if !r.confirmed {
				continue
			}
			switch r.payload.Resource {
			case demo.Accounts:
				paid[r.payload.User] += r.payload.Amount
				merchantIn += r.payload.Amount
			case demo.Inventory:
				sold[r.payload.SKU] += r.payload.Qty
			}
		}
		wantEffects(t, before, after, paid, merchantIn, sold)
	})
}
