package app_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/clocktest"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

type env struct {
	app   *app.App
	coord tccv1.CoordinatorServiceClient
	part  *testparticipant.Server
	pc    tccv1.ParticipantServiceClient
	clock *clocktest.Clock
}

type option func(*app.Config)

func withoutRecovery(c *app.Config) { c.DisableRecovery = true }

// setup starts a coordinator on a fresh database (spec), a test participant
// and clients, all on loopback, with a manual clock.
func setup(t *testing.T, spec string, opts ...option) *env {
	t.Helper()
	clock := clocktest.New(time.Now().UTC())
	cfg := app.Config{Listen: "127.0.0.1:0", DB: spec, Clock: clock}
	cfg.Recovery.Interval = 20 * time.Millisecond
	for _, o := range opts {
		o(&cfg)
	}
	a, err := app.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("start coordinator: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	e := &env{app: a, clock: clock, part: testparticipant.Start(t)}
	e.coord = tccv1.NewCoordinatorServiceClient(grpctest.Dial(t, a.Addr()))
	e.pc = tccv1.NewParticipantServiceClient(grpctest.Dial(t, e.part.Addr()))
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// begin starts gid and registers and tries the given branches.
func (e *env) begin(t *testing.T, gid string, branches ...string) {
	t.Helper()
	ctx := ctxT(t)
	if _, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: gid, Timeout: durationpb.New(10 * time.Second)}); err != nil {
		t.Fatalf("begin %s: %v", gid, err)
	}
	for _, b := range branches {
		payload := []byte("pay-" + b)
		if _, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: gid, BranchId: b, Participant: e.part.Addr(), Payload: payload}); err != nil {
			t.Fatalf("register %s/%s: %v", gid, b, err)
		}
		if _, err := e.pc.Try(ctx, &tccv1.TryRequest{Gid: gid, BranchId: b, Payload: payload}); err != nil {
			t.Fatalf("try %s/%s: %v", gid, b, err)
		}
	}
}

func (e *env) get(t *testing.T, gid string) *tccv1.Transaction {
	t.Helper()
	r, err := e.coord.GetTransaction(ctxT(t), &tccv1.GetTransactionRequest{Gid: gid})
	if err != nil {
		t.Fatalf("get %s: %v", gid, err)
	}
	return r.GetTransaction()
}

// eventually polls cond (bounded) and fails the test if it never holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCommitPath(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec)
		e.begin(t, "order-1", "accounts", "inventory")
		r, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: "order-1", Wait: true})
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		tx := r.GetTransaction()
		if tx.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED {
			t.Fatalf("state after commit(wait) = %v", tx.GetState())
		}
		for _, b := range tx.GetBranches() {
			if b.GetState() != tccv1.BranchState_BRANCH_STATE_CONFIRMED || b.GetAttempts() != 1 {
				t.Fatalf("branch %s: %v after %d attempts", b.GetBranchId(), b.GetState(), b.GetAttempts())
			}
			if n := e.part.Count("Confirm", "order-1", b.GetBranchId()); n != 1 {
				t.Fatalf("branch %s confirmed %d times", b.GetBranchId(), n)
			}
			if n := e.part.Attempts("Cancel", "order-1", b.GetBranchId()); n != 0 {
				t.Fatalf("branch %s got %d cancels", b.GetBranchId(), n)
			}
		}
		// Repeating the commit changes nothing and calls nobody again.
		if _, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: "order-1", Wait: true}); err != nil {
			t.Fatalf("repeat commit: %v", err)
		}
		if n := e.part.Attempts("Confirm", "order-1", "accounts"); n != 1 {
			t.Fatalf("repeat commit re-sent Confirm: %d calls", n)
		}
	})
}

func TestRollbackAfterRefusedTry(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec)
		ctx := ctxT(t)
		e.begin(t, "order-2", "accounts")
		e.part.SetBehaviour(func(_ context.Context, method, _, branch string) error {
			if method == "Try" && branch == "inventory" {
				return testparticipant.Refused("insufficient stock")
			}
			return nil
		})
		if _, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "order-2", BranchId: "inventory", Participant: e.part.Addr()}); err != nil {
			t.Fatal(err)
		}
		_, err := e.pc.Try(ctx, &tccv1.TryRequest{Gid: "order-2", BranchId: "inventory"})
		grpctest.WantCode(t, err, codes.FailedPrecondition)
		r, err := e.coord.Rollback(ctx, &tccv1.RollbackRequest{Gid: "order-2", Wait: true, Reason: "insufficient stock"})
		if err != nil {
			t.Fatalf("rollback: %v", err)
		}
		tx := r.GetTransaction()
		if tx.GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTED || tx.GetAbortReason() != "insufficient stock" {
			t.Fatalf("after rollback: %v %q", tx.GetState(), tx.GetAbortReason())
		}
		for _, b := range tx.GetBranches() {
			if b.GetState() != tccv1.BranchState_BRANCH_STATE_CANCELLED {
				t.Fatalf("branch %s: %v", b.GetBranchId(), b.GetState())
			}
			if n := e.part.Count("Cancel", "order-2", b.GetBranchId()); n != 1 {
				t.Fatalf("branch %s cancelled %d times", b.GetBranchId(), n)
			}
		}
		_, err = e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "order-2"})
		grpctest.WantCode(t, err, codes.FailedPrecondition, "order-2", "ABORTED")
	})
}

func TestErrors(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, withoutRecovery)
		ctx := ctxT(t)
		e.begin(t, "committed", "a")
		if _, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "committed", Wait: true}); err != nil {
			t.Fatal(err)
		}
		e.begin(t, "aborted", "a")
		if _, err := e.coord.Rollback(ctx, &tccv1.RollbackRequest{Gid: "aborted", Wait: true}); err != nil {
			t.Fatal(err)
		}
		e.begin(t, "open", "a")
		long := strings.Repeat("g", 129)
		part := e.part.Addr()
		cases := []struct {
			name     string
			call     func() error
			code     codes.Code
			contains []string
		}{
			{"begin gid too long", func() error { _, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: long}); return err }, codes.InvalidArgument, []string{"128"}},
			{"begin gid bad char", func() error { _, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "a b"}); return err }, codes.InvalidArgument, []string{"character"}},
			{"begin gid unicode", func() error { _, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "zahlung-ü"}); return err }, codes.InvalidArgument, nil},
			{"begin timeout too short", func() error {
				_, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "t1", Timeout: durationpb.New(500 * time.Millisecond)})
				return err
			}, codes.InvalidArgument, []string{"timeout"}},
			{"begin timeout too long", func() error {
				_, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "t2", Timeout: durationpb.New(25 * time.Hour)})
				return err
			}, codes.InvalidArgument, []string{"timeout"}},
			{"begin timeout negative", func() error {
				_, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "t3", Timeout: durationpb.New(-time.Second)})
				return err
			}, codes.InvalidArgument, []string{"timeout"}},
			{"begin timeout invalid proto", func() error {
				_, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "t4", Timeout: &durationpb.Duration{Seconds: 1, Nanos: -5}})
				return err
			}, codes.InvalidArgument, []string{"timeout"}},
			{"begin same gid other params", func() error {
				_, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "open", Timeout: durationpb.New(time.Minute)})
				return err
			}, codes.AlreadyExists, []string{"open"}},
			{"register empty gid", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{BranchId: "b", Participant: part})
				return err
			}, codes.InvalidArgument, []string{"gid is empty"}},
			{"register empty branch", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "open", Participant: part})
				return err
			}, codes.InvalidArgument, []string{"branch_id is empty"}},
			{"register branch too long", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "open", BranchId: strings.Repeat("b", 65), Participant: part})
				return err
			}, codes.InvalidArgument, []string{"64"}},
			{"register branch bad char", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "open", BranchId: "b/1", Participant: part})
				return err
			}, codes.InvalidArgument, nil},
			{"register payload too big", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "open", BranchId: "big", Participant: part, Payload: make([]byte, 64<<10+1)})
				return err
			}, codes.InvalidArgument, []string{"payload"}},
			{"register unknown gid", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "nope", BranchId: "b", Participant: part})
				return err
			}, codes.NotFound, []string{"nope"}},
			{"register after commit", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "committed", BranchId: "late", Participant: part})
				return err
			}, codes.FailedPrecondition, []string{"committed", "COMMITTED"}},
			{"register same branch other payload", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "open", BranchId: "a", Participant: part, Payload: []byte("other")})
				return err
			}, codes.AlreadyExists, []string{"open"}},
			{"register participant not allowed", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "open", BranchId: "evil", Participant: "169.254.169.254:80"})
				return err
			}, codes.PermissionDenied, []string{"169.254.169.254"}},
			{"register participant unix socket", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "open", BranchId: "evil", Participant: "unix:///var/run/docker.sock"})
				return err
			}, codes.PermissionDenied, nil},
			{"register participant port not a number", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "open", BranchId: "evil", Participant: "127.0.0.1:80@10.0.0.1"})
				return err
			}, codes.InvalidArgument, []string{"127.0.0.1:80@10.0.0.1", "1..65535"}},
			{"register participant port text", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "open", BranchId: "evil", Participant: "127.0.0.1:notaport"})
				return err
			}, codes.InvalidArgument, []string{"notaport"}},
			{"begin with branch whose port is not a number", func() error {
				_, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "badport", Branches: []*tccv1.BranchRegistration{{BranchId: "a", Participant: "localhost:7501x"}}})
				return err
			}, codes.InvalidArgument, []string{"7501x"}},
			{"begin gid multi-byte character named whole", func() error {
				_, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "zahlung-ü-€"})
				return err
			}, codes.InvalidArgument, []string{"'ü'"}},
			{"register participant empty", func() error {
				_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "open", BranchId: "x"})
				return err
			}, codes.InvalidArgument, []string{"participant"}},
			{"commit unknown", func() error { _, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "nope"}); return err }, codes.NotFound, []string{"nope"}},
			{"commit empty gid", func() error { _, err := e.coord.Commit(ctx, &tccv1.CommitRequest{}); return err }, codes.InvalidArgument, nil},
			{"commit after abort", func() error { _, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "aborted"}); return err }, codes.FailedPrecondition, []string{"aborted", "ABORTED"}},
			{"rollback after commit", func() error {
				_, err := e.coord.Rollback(ctx, &tccv1.RollbackRequest{Gid: "committed"})
				return err
			}, codes.FailedPrecondition, []string{"committed", "COMMITTED"}},
			{"rollback reason too long", func() error {
				_, err := e.coord.Rollback(ctx, &tccv1.RollbackRequest{Gid: "open", Reason: strings.Repeat("r", 513)})
				return err
			}, codes.InvalidArgument, []string{"reason"}},
			{"get unknown", func() error {
				_, err := e.coord.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "nope"})
				return err
			}, codes.NotFound, []string{"nope"}},
			{"checkback bad gid", func() error { _, err := e.coord.CheckBack(ctx, &tccv1.CheckBackRequest{Gid: "bad gid"}); return err }, codes.InvalidArgument, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) { grpctest.WantCode(t, tc.call(), tc.code, tc.contains...) })
		}
		// Refused calls changed nothing.
		tx := e.get(t, "open")
		if tx.GetState() != tccv1.TransactionState_TRANSACTION_STATE_TRYING || len(tx.GetBranches()) != 1 || string(tx.GetBranches()[0].GetPayload()) != "pay-a" {
			t.Fatalf("refused calls changed 'open': %v", tx)
		}
		if _, err := e.coord.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "badport"}); status.Code(err) != codes.NotFound {
			t.Fatalf("a Begin refused for its branch's target was stored: %v", err)
		}
		if tx := e.get(t, "committed"); len(tx.GetBranches()) != 1 {
			t.Fatalf("refused registration was written: %v", tx)
		}
		// Same parameters: idempotent success.
		if _, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "open", Timeout: durationpb.New(10 * time.Second)}); err != nil {
			t.Fatalf("repeat begin: %v", err)
		}
		if _, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "committed", BranchId: "a", Participant: part, Payload: []byte("pay-a")}); err != nil {
			t.Fatalf("repeat registration after commit: %v", err)
		}
	})
}

// TestMalformedRequest: bytes that are not a valid request message get
// InvalidArgument from the coordinator (grpc-go alone answers Internal),
// and nothing is stored.
func TestMalformedRequest(t *testing.T) {
	e := setup(t, dbtest.NewSQLite(t), withoutRecovery)
	cc := grpctest.Dial(t, e.app.Addr())
	ctx := ctxT(t)
	// BeginRequest field 1 (gid, a string) whose length runs past the end.
	for _, method := range []string{
		"/settle.tcc.v1.CoordinatorService/Begin",
		"/settle.tcc.v1.CoordinatorService/Commit",
		"/settle.admin.v1.AdminService/ResolveBranch",
	} {
		grpctest.WantCode(t, grpctest.InvokeRaw(ctx, cc, method, []byte{0x0a, 0x7f, 'g'}), codes.InvalidArgument, "not a valid protobuf message")
	}
	if _, err := e.coord.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "g"}); status.Code(err) != codes.NotFound {
		t.Fatalf("a malformed Begin stored something: %v", err)
	}
}

func TestBranchLimit(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, withoutRecovery, func(c *app.Config) { c.Coordinator.MaxBranches = 3 })
		e.begin(t, "many", "b1", "b2", "b3")
		_, err := e.coord.RegisterBranch(ctxT(t), &tccv1.RegisterBranchRequest{Gid: "many", BranchId: "b4", Participant: e.part.Addr()})
		grpctest.WantCode(t, err, codes.InvalidArgument, "limit is 3")
	})
}

func TestConcurrentRepeatsApplyOnce(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec)
		ctx := ctxT(t)
		// Slow Confirms so that concurrent Commits overlap the delivery round.
		e.part.SetBehaviour(func(ctx context.Context, method, _, _ string) error {
			if method == "Confirm" || method == "Cancel" {
				time.Sleep(50 * time.Millisecond)
			}
			return nil
		})
		run10 := func(f func() error) {
			var wg sync.WaitGroup
			for i := 0; i < 10; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := f(); err != nil {
						t.Errorf("concurrent call: %v", err)
					}
				}()
			}
			wg.Wait()
		}
		run10(func() error {
			_, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "dup", Timeout: durationpb.New(10 * time.Second), Labels: map[string]string{"k": "v"}})
			return err
		})
		run10(func() error {
			_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "dup", BranchId: "a", Participant: e.part.Addr(), Payload: []byte("p")})
			return err
		})
		if _, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "dup", BranchId: "b", Participant: e.part.Addr()}); err != nil {
			t.Fatal(err)
		}
		run10(func() error {
			_, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "dup", Wait: true})
			return err
		})
		tx := e.get(t, "dup")
		if tx.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED || len(tx.GetBranches()) != 2 {
			t.Fatalf("after concurrent commits: %v", tx)
		}
		for _, b := range []string{"a", "b"} {
			if n := e.part.Attempts("Confirm", "dup", b); n != 1 {
				t.Fatalf("branch %s: %d Confirm calls, want 1", b, n)
			}
		}
		if m := e.part.MaxConcurrent(); m != 1 {
			t.Fatalf("%d calls in progress for one branch at once, want 1", m)
		}

		// The same for Rollback.
		e.begin(t, "dup2", "a", "b")
		run10(func() error {
			_, err := e.coord.Rollback(ctx, &tccv1.RollbackRequest{Gid: "dup2", Wait: true})
			return err
		})
		for _, b := range []string{"a", "b"} {
			if n := e.part.Attempts("Cancel", "dup2", b); n != 1 {
				t.Fatalf("branch %s: %d Cancel calls, want 1", b, n)
			}
		}
		if tx := e.get(t, "dup2"); tx.GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTED {
			t.Fatalf("dup2: %v", tx.GetState())
		}
	})
}

func TestCheckBack(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, withoutRecovery)
		ctx := ctxT(t)
		check := func(gid string) *tccv1.CheckBackResponse {
			t.Helper()
			r, err := e.coord.CheckBack(ctx, &tccv1.CheckBackRequest{Gid: gid, BranchId: "a"})
			if err != nil {
				t.Fatalf("check-back %s: %v", gid, err)
			}
			return r
		}
		e.begin(t, "pending", "a")
		r := check("pending")
		if r.GetVerdict() != tccv1.Verdict_VERDICT_PENDING || r.GetState() != tccv1.TransactionState_TRANSACTION_STATE_TRYING ||
			r.GetRetryAfter().AsDuration() < time.Second || r.GetRetryAfter().AsDuration() > 5*time.Second {
			t.Fatalf("pending: %v", r)
		}

		e.begin(t, "committed", "a")
		if _, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "committed", Wait: true}); err != nil {
			t.Fatal(err)
		}
		if r := check("committed"); r.GetVerdict() != tccv1.Verdict_VERDICT_CONFIRM || r.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED {
			t.Fatalf("committed: %v", r)
		}

		e.begin(t, "aborted", "a")
		if _, err := e.coord.Rollback(ctx, &tccv1.RollbackRequest{Gid: "aborted", Wait: true}); err != nil {
			t.Fatal(err)
		}
		if r := check("aborted"); r.GetVerdict() != tccv1.Verdict_VERDICT_CANCEL {
			t.Fatalf("aborted: %v", r)
		}

		// Unknown gid: presumed abort, recorded, and a later Begin/Commit is refused.
		if r := check("never-begun"); r.GetVerdict() != tccv1.Verdict_VERDICT_CANCEL || r.GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTED {
			t.Fatalf("unknown: %v", r)
		}
		_, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "never-begun"})
		grpctest.WantCode(t, err, codes.FailedPrecondition, "never-begun", "presumed")
		_, err = e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "never-begun"})
		grpctest.WantCode(t, err, codes.FailedPrecondition, "ABORTED")
		if r := check("never-begun"); r.GetVerdict() != tccv1.Verdict_VERDICT_CANCEL {
			t.Fatalf("repeat unknown: %v", r)
		}

		// Expired TRYING: the check-back records the abort, then cancels.
		e.clock.Advance(11 * time.Second)
		if r := check("pending"); r.GetVerdict() != tccv1.Verdict_VERDICT_CANCEL {
			t.Fatalf("expired: %v", r)
		}
		eventually(t, "expired transaction aborted and cancelled", func() bool {
			return e.get(t, "pending").GetState() == tccv1.TransactionState_TRANSACTION_STATE_ABORTED
		})
		if n := e.part.Count("Cancel", "pending", "a"); n != 1 {
			t.Fatalf("expired: %d cancels", n)
		}
		if got := e.get(t, "pending").GetAbortReason(); !strings.Contains(got, "deadline") {
			t.Fatalf("abort reason %q", got)
		}
		_, err = e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "pending"})
		grpctest.WantCode(t, err, codes.FailedPrecondition, "pending", "ABORTED")
	})
}

// TestCommitRacesCheckBack (S6): a Commit and a CheckBack on an expired
// transaction race; exactly one decision wins and both see it.
func TestCommitRacesCheckBack(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, withoutRecovery)
		ctx := ctxT(t)
		const rounds = 40
		var commits, aborts int
		for i := 0; i < rounds; i++ {
			gid := fmt.Sprintf("race-%d", i)
			e.begin(t, gid, "a", "b")
		}
		e.clock.Advance(11 * time.Second)
		for i := 0; i < rounds; i++ {
			gid := fmt.Sprintf("race-%d", i)
			var wg sync.WaitGroup
			var commitErr, cbErr error
			var verdict tccv1.Verdict
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, commitErr = e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: gid, Wait: true})
			}()
			go func() {
				defer wg.Done()
				var r *tccv1.CheckBackResponse
				r, cbErr = e.coord.CheckBack(ctx, &tccv1.CheckBackRequest{Gid: gid, BranchId: "a"})
				verdict = r.GetVerdict()
			}()
			wg.Wait()
			if cbErr != nil {
				t.Fatalf("%s check-back: %v", gid, cbErr)
			}
			switch {
			case commitErr == nil:
				commits++
				if verdict != tccv1.Verdict_VERDICT_CONFIRM {
					t.Fatalf("%s: commit won but check-back said %v", gid, verdict)
				}
			case status.Code(commitErr) == codes.FailedPrecondition:
				aborts++
				if verdict != tccv1.Verdict_VERDICT_CANCEL {
					t.Fatalf("%s: abort won but check-back said %v", gid, verdict)
				}
			default:
				t.Fatalf("%s commit: %v", gid, commitErr)
			}
			gidCopy := gid
			eventually(t, gid+" finished", func() bool {
				return e.get(t, gidCopy).GetState() >= tccv1.TransactionState_TRANSACTION_STATE_COMMITTED &&
					e.get(t, gidCopy).GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTING
			})
			confirms := e.part.Count("Confirm", gid, "a") + e.part.Count("Confirm", gid, "b")
			cancels := e.part.Count("Cancel", gid, "a") + e.part.Count("Cancel", gid, "b")
			if (confirms == 2) == (cancels == 2) || confirms+cancels != 2 {
				t.Fatalf("%s: %d confirms and %d cancels: not all-or-nothing", gid, confirms, cancels)
			}
		}
		t.Logf("%d races: commit won %d, check-back abort won %d", rounds, commits, aborts)
	})
}
