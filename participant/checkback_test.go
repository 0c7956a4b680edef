package participant_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/participant"
)

// cbEnv is a participant env plus a real coordinator on loopback sharing
// its manual clock.
type cbEnv struct {
	*env
	coord tccv1.CoordinatorServiceClient
}

func setupWithCoordinator(t *testing.T, be dbtest.Backend, opts ...option) *cbEnv {
	t.Helper()
	e := setup(t, be.New(t), opts...)
	cfg := app.Config{Listen: "127.0.0.1:0", DB: be.New(t), Clock: e.clock}
	cfg.Recovery.Interval = 20 * time.Millisecond
	a, err := app.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("start coordinator: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &cbEnv{env: e, coord: tccv1.NewCoordinatorServiceClient(grpctest.Dial(t, a.Addr()))}
}

func (e *cbEnv) checker(t *testing.T, p *participant.Participant) *participant.Checker {
	t.Helper()
	c, err := p.NewChecker(participant.CheckerConfig{Coordinator: e.coord, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("NewChecker: %v", err)
	}
	return c
}

// begin starts gid with timeout, registers branch b1 with this participant
// and tries it.
func (e *cbEnv) begin(t *testing.T, gid string, timeout time.Duration, payload string) {
	t.Helper()
	ctx := ctxT(t)
	if _, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: gid, Timeout: durationpb.New(timeout)}); err != nil {
		t.Fatalf("begin %s: %v", gid, err)
	}
	if _, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: gid, BranchId: "b1", Participant: e.addr, Payload: []byte(payload)}); err != nil {
		t.Fatalf("register %s: %v", gid, err)
	}
	grpctest.WantCode(t, e.try(t, gid, "b1", payload), codes.OK, "")
}

func (e *cbEnv) txn(t *testing.T, gid string) *tccv1.Transaction {
	t.Helper()
	r, err := e.coord.GetTransaction(ctxT(t), &tccv1.GetTransactionRequest{Gid: gid})
	if err != nil {
		t.Fatalf("get %s: %v", gid, err)
	}
	return r.GetTransaction()
}

// eventually polls cond, advancing the clock a little each time so the
// coordinator's backoff elapses, and fails the test if cond never holds.
func (e *cbEnv) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		e.clock.Advance(time.Second)
		time.Sleep(10 * time.Millisecond)
	}
}

func wantStats(t *testing.T, got participant.CheckStats, err error, want participant.CheckStats) {
	t.Helper()
	if err != nil || got != want {
		t.Fatalf("RunOnce = %+v, %v; want %+v", got, err, want)
	}
}

// The coordinator decides commit but every Confirm it sends is lost: the
// worker asks, hears "confirm", and confirms locally through the fence.
// When the network heals the coordinator's own Confirm is a repeat.
func TestCheckBackConfirmsWhenConfirmIsLost(t *testing.T) {
	t.Parallel()
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			e := setupWithCoordinator(t, be)
			chk := e.checker(t, e.p)
			e.drop.Store(true)
			e.begin(t, "g1", time.Minute, "3")
			if _, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: "g1", Wait: true}); err != nil {
				t.Fatalf("commit: %v", err)
			}
			e.wantState(t, "g1", "b1", participant.StateTried)

			st, err := chk.RunOnce(ctxT(t))
			wantStats(t, st, err, participant.CheckStats{}) // not due yet
			e.clock.Advance(31 * time.Second)
			st, err = chk.RunOnce(ctxT(t))
			wantStats(t, st, err, participant.CheckStats{Due: 1, Claimed: 1, Confirmed: 1})
			e.wantState(t, "g1", "b1", participant.StateConfirmed)
			if s := e.stock(t); s != (stock{97, 0, 3}) {
				t.Fatalf("stock = %+v", s)
			}

			e.drop.Store(false)
			e.eventually(t, "g1 COMMITTED", func() bool {
				return e.txn(t, "g1").GetState() == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED
			})
			if n := e.runs(t, "confirm", "g1", "b1"); n != 1 {
				t.Fatalf("Confirm handler ran %d times", n)
			}
			cs, err := participant.Reconcile(ctxT(t), e.coord, mustRecords(t, e.p))
			if err != nil || len(cs) != 1 || cs[0].Agreement != participant.AgreeOK {
				t.Fatalf("Reconcile = %+v, %v", cs, err)
			}
		})
	}
}

// The initiator never commits: before the deadline the worker hears
// "pending" and waits; after it the coordinator aborts and the worker
// cancels locally, releasing the reservation.
func TestCheckBackCancelsAfterDeadline(t *testing.T) {
	t.Parallel()
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			e := setupWithCoordinator(t, be)
			chk := e.checker(t, e.p)
			e.drop.Store(true)
			e.begin(t, "g1", 2*time.Minute, "3")

			e.clock.Advance(31 * time.Second)
			st, err := chk.RunOnce(ctxT(t))
			wantStats(t, st, err, participant.CheckStats{Due: 1, Claimed: 1, Pending: 1})
			r, _ := e.record(t, "g1", "b1")
			if r.State != participant.StateTried || r.CheckCount != 1 || !r.NextCheckAt.After(e.clock.Now()) {
				t.Fatalf("after pending: %+v", r)
			}
			st, err = chk.RunOnce(ctxT(t))
			wantStats(t, st, err, participant.CheckStats{}) // rescheduled, not due

			e.clock.Advance(2 * time.Minute) // past the deadline
			st, err = chk.RunOnce(ctxT(t))
			wantStats(t, st, err, participant.CheckStats{Due: 1, Claimed: 1, Cancelled: 1})
			e.wantState(t, "g1", "b1", participant.StateCancelled)
			if s := e.stock(t); s != (stock{100, 0, 0}) {
				t.Fatalf("stock = %+v", s)
			}
			// A Commit now is refused: the abort was recorded first.
			if _, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: "g1"}); err == nil {
				t.Fatal("Commit after the check-back abort succeeded")
			}
			e.drop.Store(false)
			e.eventually(t, "g1 ABORTED", func() bool {
				return e.txn(t, "g1").GetState() == tccv1.TransactionState_TRANSACTION_STATE_ABORTED
			})
			if n := e.runs(t, "cancel", "g1", "b1"); n != 1 {
				t.Fatalf("Cancel handler ran %d times", n)
			}
		})
	}
}

// A Try for a gid the coordinator never heard of (the initiator died before
// Begin reached it, or a forged call): presumed abort, released.
func TestCheckBackUnknownGIDIsCancelled(t *testing.T) {
	t.Parallel()
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			e := setupWithCoordinator(t, be)
			chk := e.checker(t, e.p)
			grpctest.WantCode(t, e.try(t, "ghost", "b1", "5"), codes.OK, "")
			e.clock.Advance(time.Minute)
			st, err := chk.RunOnce(ctxT(t))
			wantStats(t, st, err, participant.CheckStats{Due: 1, Claimed: 1, Cancelled: 1})
			if s := e.stock(t); s != (stock{100, 0, 0}) {
				t.Fatalf("stock = %+v", s)
			}
			if _, err := e.coord.Begin(ctxT(t), &tccv1.BeginRequest{Gid: "ghost"}); err == nil {
				t.Fatal("Begin of a presumed-aborted gid succeeded")
			}
		})
	}
}

// Several participant instances run the worker at once over one database:
// every row is checked and applied exactly once.
func TestCheckBackConcurrentWorkers(t *testing.T) {
	t.Parallel()
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			e := setupWithCoordinator(t, be)
			e.drop.Store(true)
			const n = 12
			for i := range n {
				gid := fmt.Sprintf("g%02d", i)
				e.begin(t, gid, time.Minute, "1")
				if i%2 == 0 {
					if _, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: gid}); err != nil {
						t.Fatalf("commit: %v", err)
					}
				} else if _, err := e.coord.Rollback(ctxT(t), &tccv1.RollbackRequest{Gid: gid}); err != nil {
					t.Fatalf("rollback: %v", err)
				}
			}
			e.clock.Advance(31 * time.Second)
			var workers []*participant.Checker
			for range 4 {
				cfg := participant.Config{DB: e.db, Clock: e.clock, CheckBackAfter: 30 * time.Second}
				handlers(&cfg)
				p, err := participant.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				workers = append(workers, e.checker(t, p))
			}
			var (
				mu    sync.Mutex
				total participant.CheckStats
				wg    sync.WaitGroup
			)
			for _, w := range workers {
				wg.Go(func() {
					st, err := w.RunOnce(ctxT(t))
					if err != nil {
						t.Errorf("RunOnce: %v", err)
					}
					mu.Lock()
					total.Claimed += st.Claimed
					total.Confirmed += st.Confirmed
					total.Cancelled += st.Cancelled
					total.Failed += st.Failed
					mu.Unlock()
				})
			}
			wg.Wait()
			if total.Claimed != n || total.Confirmed != n/2 || total.Cancelled != n/2 || total.Failed != 0 {
				t.Fatalf("total = %+v", total)
			}
			for i := range n {
				gid := fmt.Sprintf("g%02d", i)
				if c, x := e.runs(t, "confirm", gid, "b1"), e.runs(t, "cancel", gid, "b1"); c+x != 1 || (c == 1) != (i%2 == 0) {
					t.Fatalf("%s: confirm ran %d, cancel %d", gid, c, x)
				}
			}
			if s := e.stock(t); s != (stock{100 - n/2, 0, n / 2}) {
				t.Fatalf("stock = %+v", s)
			}
		})
	}
}

// An unreachable coordinator: the row is rescheduled with backoff, and
// nothing is applied.
func TestCheckBackCoordinatorUnreachable(t *testing.T) {
	t.Parallel()
	e := setup(t, dbtest.NewSQLite(t))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	chk, err := e.p.NewChecker(participant.CheckerConfig{
		Coordinator: tccv1.NewCoordinatorServiceClient(grpctest.Dial(t, dead)),
		CallTimeout: 2 * time.Second, MinRetry: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	grpctest.WantCode(t, e.try(t, "g1", "b1", "1"), codes.OK, "")
	e.clock.Advance(31 * time.Second)
	st, err := chk.RunOnce(ctxT(t))
	wantStats(t, st, err, participant.CheckStats{Due: 1, Claimed: 1, Failed: 1})
	r, _ := e.record(t, "g1", "b1")
	if wait := r.NextCheckAt.Sub(e.clock.Now()); r.State != participant.StateTried || wait < 5*time.Second || wait > 10*time.Second {
		t.Fatalf("after failure: %+v (next check in %v)", r, wait)
	}
}

// Run keeps checking until its context ends.
func TestCheckerRunStops(t *testing.T) {
	t.Parallel()
	e := setupWithCoordinator(t, dbtest.Backends()[0])
	chk := e.checker(t, e.p)
	e.drop.Store(true)
	e.begin(t, "g1", time.Minute, "2")
	if _, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: "g1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- chk.Run(ctx) }()
	e.clock.Advance(31 * time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for r, _ := e.record(t, "g1", "b1"); r.State != participant.StateConfirmed; r, _ = e.record(t, "g1", "b1") {
		if time.Now().After(deadline) {
			t.Fatalf("Run never confirmed: %+v", r)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
}

func TestCheckerConfigValidate(t *testing.T) {
	t.Parallel()
	e := setup(t, dbtest.NewSQLite(t))
	if _, err := e.p.NewChecker(participant.CheckerConfig{}); err == nil {
		t.Fatal("NewChecker accepted no coordinator")
	}
	coord := tccv1.NewCoordinatorServiceClient(grpctest.Dial(t, "127.0.0.1:1"))
	if _, err := e.p.NewChecker(participant.CheckerConfig{Coordinator: coord, Lease: time.Second, CallTimeout: time.Second}); err == nil {
		t.Fatal("NewChecker accepted a lease shorter than two calls")
	}
}

func mustRecords(t *testing.T, p *participant.Participant) []participant.Record {
	t.Helper()
	rs, err := p.Records(ctxT(t), participant.Query{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}
