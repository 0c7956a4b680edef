package participant_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/participant"
)

// 50 identical Tries at once, then 50 identical Cancels: one effect each,
// every call answered OK (no deadlock or lock timeout surfaces).
func TestConcurrentDuplicateTryThenCancel(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		if got := burst(50, func() error { return e.try(t, "g1", "b1", "3") }); got[codes.OK] != 50 {
			t.Fatalf("50 identical Tries: codes %v, want 50 OK", got)
		}
		if n := e.runs(t, "try", "g1", "b1"); n != 1 {
			t.Fatalf("Try handler committed %d times", n)
		}
		if s := e.stock(t); s != (stock{97, 3, 0}) {
			t.Fatalf("stock = %+v", s)
		}
		if got := burst(50, func() error { return e.cancel(t, "g1", "b1", "3") }); got[codes.OK] != 50 {
			t.Fatalf("50 identical Cancels: codes %v, want 50 OK", got)
		}
		if n := e.runs(t, "cancel", "g1", "b1"); n != 1 {
			t.Fatalf("Cancel handler committed %d times", n)
		}
		if s := e.stock(t); s != (stock{100, 0, 0}) {
			t.Fatalf("stock = %+v", s)
		}
	})
}

// 50 identical Confirms at once apply once.
func TestConcurrentDuplicateConfirm(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		grpctest.WantCode(t, e.try(t, "g1", "b1", "3"), codes.OK, "")
		if got := burst(50, func() error { return e.confirm(t, "g1", "b1", "3") }); got[codes.OK] != 50 {
			t.Fatalf("50 identical Confirms: codes %v", got)
		}
		if s := e.stock(t); s != (stock{97, 0, 3}) {
			t.Fatalf("stock = %+v", s)
		}
	})
}

// 50 Cancels before any Try (the gap-lock deadlock case on MySQL), then 50
// late Tries: all Cancels succeed, every Try is refused, nothing reserved.
func TestConcurrentCancelBeforeTry(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		if got := burst(50, func() error { return e.cancel(t, "g1", "b1", "3") }); got[codes.OK] != 50 {
			t.Fatalf("50 null compensations: codes %v", got)
		}
		if got := burst(50, func() error { return e.try(t, "g1", "b1", "3") }); got[codes.FailedPrecondition] != 50 {
			t.Fatalf("50 late Tries: codes %v, want all refused", got)
		}
		if s := e.stock(t); s != (stock{100, 0, 0}) {
			t.Fatalf("stock = %+v", s)
		}
	})
}

// 50 identical Tries that the handler refuses: when the first rolls back
// its fence row, InnoDB picks deadlock victims among the waiters; the
// retry must hide them.
func TestConcurrentDuplicateRefusedTry(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		if got := burst(50, func() error { return e.try(t, "g1", "b1", "500") }); got[codes.FailedPrecondition] != 50 {
			t.Fatalf("50 refused Tries: codes %v, want 50 FailedPrecondition", got)
		}
		if _, ok := e.record(t, "g1", "b1"); ok {
			t.Fatal("refused Tries left a fence row")
		}
	})
}

// Try and Cancel racing on fresh branches: whichever order the database
// picks, one more Cancel leaves nothing reserved.
func TestConcurrentTryAndCancel(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		for i := range 10 {
			gid := fmt.Sprintf("g%d", i)
			got := burst(20, func() error {
				if rand.IntN(2) == 0 {
					return e.try(t, gid, "b1", "2")
				}
				return e.cancel(t, gid, "b1", "2")
			})
			if got[codes.OK]+got[codes.FailedPrecondition] != 20 {
				t.Fatalf("%s: codes %v", gid, got)
			}
			grpctest.WantCode(t, e.cancel(t, gid, "b1", "2"), codes.OK, "")
			e.wantState(t, gid, "b1", participant.StateCancelled)
		}
		if s := e.stock(t); s != (stock{100, 0, 0}) {
			t.Fatalf("stock = %+v", s)
		}
	})
}

// Confirm and Cancel racing for a tried branch: exactly one kind wins.
func TestConcurrentConfirmAndCancel(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		for i := range 5 {
			gid := fmt.Sprintf("g%d", i)
			grpctest.WantCode(t, e.try(t, gid, "b1", "1"), codes.OK, "")
			burst(20, func() error {
				if rand.IntN(2) == 0 {
					return e.confirm(t, gid, "b1", "1")
				}
				return e.cancel(t, gid, "b1", "1")
			})
			c, x := e.runs(t, "confirm", gid, "b1"), e.runs(t, "cancel", gid, "b1")
			if c+x != 1 {
				t.Fatalf("%s: confirm ran %d, cancel ran %d; want exactly one", gid, c, x)
			}
		}
		s := e.stock(t)
		if s.reserved != 0 || s.available+s.sold != 100 {
			t.Fatalf("stock = %+v", s)
		}
	})
}
