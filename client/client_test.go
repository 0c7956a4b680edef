package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/grpctest"
)

// recorder is the ordered log of calls seen by the fake coordinator and
// participant, shared so that the test can check cross-service ordering.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// fakeCoordinator keeps just enough state to answer like the real one: one
// state per gid, decided by the first Commit or Rollback.
type fakeCoordinator struct {
	tccv1.UnimplementedCoordinatorServiceServer
	rec *recorder

	mu       sync.Mutex
	states   map[string]tccv1.TransactionState
	begins   []*tccv1.BeginRequest
	reasons  []string
	rbCtxErr []error // ctx.Err() seen by each Rollback handler

	registerErr error
	// commitErr, when set, is returned by Commit after it has (or has not,
	// per commitApplies) recorded the decision.
	commitErr     error
	commitApplies bool
}

func newFakeCoordinator(rec *recorder) *fakeCoordinator {
	return &fakeCoordinator{rec: rec, states: map[string]tccv1.TransactionState{}}
}

// set changes the fake's behaviour under its lock.
func (f *fakeCoordinator) set(fn func(*fakeCoordinator)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeCoordinator) reason(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reasons[i]
}

func (f *fakeCoordinator) txn(gid string) *tccv1.Transaction {
	return &tccv1.Transaction{Gid: gid, State: f.states[gid]}
}

func (f *fakeCoordinator) Begin(_ context.Context, req *tccv1.BeginRequest) (*tccv1.BeginResponse, error) {
	f.rec.add("begin %s", req.GetGid())
	f.mu.Lock()
	defer f.mu.Unlock()
	f.begins = append(f.begins, req)
	if _, ok := f.states[req.GetGid()]; !ok {
		f.states[req.GetGid()] = tccv1.TransactionState_TRANSACTION_STATE_TRYING
	}
	return &tccv1.BeginResponse{Transaction: f.txn(req.GetGid())}, nil
}

func (f *fakeCoordinator) RegisterBranch(_ context.Context, req *tccv1.RegisterBranchRequest) (*tccv1.RegisterBranchResponse, error) {
	f.rec.add("register %s %s %s %s", req.GetGid(), req.GetBranchId(), req.GetParticipant(), req.GetPayload())
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.registerErr != nil {
		return nil, f.registerErr
	}
	return &tccv1.RegisterBranchResponse{Transaction: f.txn(req.GetGid())}, nil
}

// decide applies the compare-and-set TRYING -> to, or reports the conflict.
func (f *fakeCoordinator) decide(gid string, to tccv1.TransactionState) error {
	cur := f.states[gid]
	switch {
	case cur == tccv1.TransactionState_TRANSACTION_STATE_TRYING:
		f.states[gid] = to
		return nil
	case cur == to:
		return nil
	default:
		return status.Errorf(codes.FailedPrecondition, "transaction %s is %s", gid, cur)
	}
}

func (f *fakeCoordinator) Commit(_ context.Context, req *tccv1.CommitRequest) (*tccv1.CommitResponse, error) {
	f.rec.add("commit %s wait=%t", req.GetGid(), req.GetWait())
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.commitErr != nil {
		if f.commitApplies {
			_ = f.decide(req.GetGid(), tccv1.TransactionState_TRANSACTION_STATE_COMMITTING)
		}
		return nil, f.commitErr
	}
	if err := f.decide(req.GetGid(), tccv1.TransactionState_TRANSACTION_STATE_COMMITTING); err != nil {
		return nil, err
	}
	return &tccv1.CommitResponse{Transaction: f.txn(req.GetGid())}, nil
}

func (f *fakeCoordinator) Rollback(ctx context.Context, req *tccv1.RollbackRequest) (*tccv1.RollbackResponse, error) {
	f.rec.add("rollback %s wait=%t", req.GetGid(), req.GetWait())
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reasons = append(f.reasons, req.GetReason())
	f.rbCtxErr = append(f.rbCtxErr, ctx.Err())
	if err := f.decide(req.GetGid(), tccv1.TransactionState_TRANSACTION_STATE_ABORTING); err != nil {
		return nil, err
	}
	return &tccv1.RollbackResponse{Transaction: f.txn(req.GetGid())}, nil
}

func (f *fakeCoordinator) GetTransaction(_ context.Context, req *tccv1.GetTransactionRequest) (*tccv1.GetTransactionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.states[req.GetGid()]; !ok {
		return nil, status.Error(codes.NotFound, "no such transaction")
	}
	return &tccv1.GetTransactionResponse{Transaction: f.txn(req.GetGid())}, nil
}

// tryCall is what the fake participant saw of one Try.
type tryCall struct {
	gid, branchID     string
	mdGID, mdBranchID []string
	deadline          time.Time
	hasDeadline       bool
	payload           string
}

type fakeParticipant struct {
	tccv1.UnimplementedParticipantServiceServer
	rec *recorder

	mu     sync.Mutex
	calls  []tryCall
	tryErr error
	// block makes Try wait for its context to end.
	block bool
}

func (p *fakeParticipant) Try(ctx context.Context, req *tccv1.TryRequest) (*tccv1.TryResponse, error) {
	p.rec.add("try %s %s", req.GetGid(), req.GetBranchId())
	md, _ := metadata.FromIncomingContext(ctx)
	dl, ok := ctx.Deadline()
	p.mu.Lock()
	p.calls = append(p.calls, tryCall{
		gid: req.GetGid(), branchID: req.GetBranchId(),
		mdGID: md.Get(client.MetadataGID), mdBranchID: md.Get(client.MetadataBranchID),
		deadline: dl, hasDeadline: ok, payload: string(req.GetPayload()),
	})
	err, block := p.tryErr, p.block
	p.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if err != nil {
		return nil, err
	}
	return &tccv1.TryResponse{}, nil
}

// set changes the fake's behaviour under its lock.
func (p *fakeParticipant) set(fn func(*fakeParticipant)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p)
}

func (p *fakeParticipant) tries() []tryCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]tryCall(nil), p.calls...)
}

type env struct {
	rec         *recorder
	coord       *fakeCoordinator
	part        *fakeParticipant
	partAddr    string
	client      *client.Client
	coordTarget string
}

// serve starts a gRPC server on loopback and stops it when the test ends.
func serve(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	srv := grpc.NewServer()
	register(srv)
	return grpctest.Serve(t, srv)
}

func setup(t *testing.T, opts ...client.Option) *env {
	t.Helper()
	rec := &recorder{}
	e := &env{rec: rec, coord: newFakeCoordinator(rec), part: &fakeParticipant{rec: rec}}
	e.coordTarget = serve(t, func(s *grpc.Server) { tccv1.RegisterCoordinatorServiceServer(s, e.coord) })
	e.partAddr = serve(t, func(s *grpc.Server) { tccv1.RegisterParticipantServiceServer(s, e.part) })
	c, err := client.New(e.coordTarget, opts...)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	e.client = c
	return e
}

func equalEvents(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestTryRegistersBeforeTry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	tx, err := e.client.Begin(ctx, client.BeginOptions{GID: "g1"})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if tx.GID() != "g1" {
		t.Fatalf("GID() = %q", tx.GID())
	}
	if err := tx.Try(ctx, "b1", e.partAddr, []byte("p1")); err != nil {
		t.Fatalf("Try b1: %v", err)
	}
	if err := tx.Try(ctx, "b2", e.partAddr, []byte("p2")); err != nil {
		t.Fatalf("Try b2: %v", err)
	}
	equalEvents(t, e.rec.list(), []string{
		"begin g1",
		"register g1 b1 " + e.partAddr + " p1",
		"try g1 b1",
		"register g1 b2 " + e.partAddr + " p2",
		"try g1 b2",
	})
	if got := e.part.tries()[0].payload; got != "p1" {
		t.Fatalf("payload at participant = %q", got)
	}
}

func TestTryNotSentWhenRegistrationFails(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.coord.set(func(f *fakeCoordinator) {
		f.registerErr = status.Error(codes.AlreadyExists, "branch b1 exists with another payload")
	})
	ctx := context.Background()
	tx, err := e.client.Begin(ctx, client.BeginOptions{GID: "g1"})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	err = tx.Try(ctx, "b1", e.partAddr, []byte("p"))
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("Try error = %v, want AlreadyExists", err)
	}
	if !strings.Contains(err.Error(), "client: register branch b1 of g1") {
		t.Fatalf("Try error lacks context: %v", err)
	}
	if n := len(e.part.tries()); n != 0 {
		t.Fatalf("participant got %d Try calls after failed registration", n)
	}
	var be *client.BranchError
	if !errors.As(err, &be) || be.Stage != client.StageRegister || be.BranchID != "b1" || be.GID != "g1" {
		t.Fatalf("error %v is not a register-stage BranchError", err)
	}
	if _, ok := client.Refusal(err); ok {
		t.Fatal("Refusal() true for a coordinator error")
	}
}

func TestTryPropagatesMetadataAndDeadline(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tx, err := e.client.Begin(context.Background(), client.BeginOptions{GID: "order-42"})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
	defer cancel()
	want, _ := ctx.Deadline()
	if err := tx.Try(ctx, "pay", e.partAddr, nil); err != nil {
		t.Fatalf("Try: %v", err)
	}
	got := e.part.tries()[0]
	if got.gid != "order-42" || got.branchID != "pay" {
		t.Fatalf("request ids = %q %q", got.gid, got.branchID)
	}
	if len(got.mdGID) != 1 || got.mdGID[0] != "order-42" {
		t.Fatalf("metadata %s = %q", client.MetadataGID, got.mdGID)
	}
	if len(got.mdBranchID) != 1 || got.mdBranchID[0] != "pay" {
		t.Fatalf("metadata %s = %q", client.MetadataBranchID, got.mdBranchID)
	}
	if !got.hasDeadline {
		t.Fatal("participant saw no deadline")
	}
	// The deadline travels as a relative timeout and is rebuilt on arrival,
	// so allow a little slack either way.
	if d := want.Sub(got.deadline).Abs(); d > time.Second {
		t.Fatalf("participant deadline %v differs from caller's %v by %v", got.deadline, want, d)
	}
}

func TestTryDeadlineExpires(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.part.set(func(p *fakeParticipant) { p.block = true })
	tx, err := e.client.Begin(context.Background(), client.BeginOptions{GID: "g1"})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = tx.Try(ctx, "b1", e.partAddr, nil)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Try error = %v, want DeadlineExceeded", err)
	}
}

func TestTryErrorKeepsStatus(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.part.set(func(p *fakeParticipant) { p.tryErr = status.Error(codes.FailedPrecondition, "insufficient funds") })
	ctx := context.Background()
	tx, err := e.client.Begin(ctx, client.BeginOptions{GID: "g1"})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	err = tx.Try(ctx, "b1", e.partAddr, nil)
	if err == nil {
		t.Fatal("Try succeeded, want refusal")
	}
	if !strings.HasPrefix(err.Error(), "client: try branch b1 of g1: ") {
		t.Fatalf("error text = %q", err)
	}
	// status.Code and status.FromError unwrap (grpc-go >= 1.55).
	if got := status.Code(err); got != codes.FailedPrecondition {
		t.Fatalf("status.Code = %v, want FailedPrecondition", got)
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		t.Fatalf("status.FromError = %v, %t", st, ok)
	}
	// The participant's own message stays reachable through errors.As.
	var gs interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &gs) || gs.GRPCStatus().Message() != "insufficient funds" {
		t.Fatalf("inner status not reachable: %v", err)
	}
	if msg, ok := client.Refusal(fmt.Errorf("outer: %w", err)); !ok || msg != "insufficient funds" {
		t.Fatalf("Refusal() = %q, %t", msg, ok)
	}
}

func TestBeginParameters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	tx, err := e.client.Begin(ctx, client.BeginOptions{Timeout: 90 * time.Second, Labels: map[string]string{"order": "42"}})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if _, err := uuid.Parse(tx.GID()); err != nil {
		t.Fatalf("generated gid %q is not a UUID: %v", tx.GID(), err)
	}
	if _, err := e.client.Begin(ctx, client.BeginOptions{GID: "g2"}); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	e.coord.mu.Lock()
	defer e.coord.mu.Unlock()
	b := e.coord.begins[0]
	if b.GetGid() != tx.GID() || b.GetTimeout().AsDuration() != 90*time.Second || b.GetLabels()["order"] != "42" {
		t.Fatalf("BeginRequest = %v", b)
	}
	if e.coord.begins[1].GetTimeout() != nil {
		t.Fatalf("zero Timeout sent as %v, want unset", e.coord.begins[1].GetTimeout())
	}
}

func TestRunCommits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	txn, err := e.client.Run(context.Background(), client.BeginOptions{GID: "g1"}, func(ctx context.Context, tx *client.Txn) error {
		if err := tx.Try(ctx, "a", e.partAddr, []byte("x")); err != nil {
			return err
		}
		return tx.Try(ctx, "b", e.partAddr, []byte("y"))
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if txn.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTING {
		t.Fatalf("state = %v", txn.GetState())
	}
	equalEvents(t, e.rec.list(), []string{
		"begin g1",
		"register g1 a " + e.partAddr + " x",
		"try g1 a",
		"register g1 b " + e.partAddr + " y",
		"try g1 b",
		"commit g1 wait=false",
	})
}

func TestRunWait(t *testing.T) {
	t.Parallel()
	e := setup(t, client.WithRunWait(true))
	if _, err := e.client.Run(context.Background(), client.BeginOptions{GID: "g1"}, func(context.Context, *client.Txn) error { return nil }); err != nil {
		t.Fatalf("Run: %v", err)
	}
	equalEvents(t, e.rec.list(), []string{"begin g1", "commit g1 wait=true"})
}

var errBusiness = errors.New("out of stock")

func TestRunRollsBackOnError(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.part.set(func(p *fakeParticipant) { p.tryErr = status.Error(codes.FailedPrecondition, "insufficient funds") })
	txn, err := e.client.Run(context.Background(), client.BeginOptions{GID: "g1"}, func(ctx context.Context, tx *client.Txn) error {
		if err := tx.Try(ctx, "a", e.partAddr, nil); err != nil {
			return fmt.Errorf("pay: %w", err)
		}
		return errBusiness
	})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Run error = %v, want the participant's FailedPrecondition", err)
	}
	if txn.GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTING {
		t.Fatalf("state = %v", txn.GetState())
	}
	equalEvents(t, e.rec.list(), []string{
		"begin g1",
		"register g1 a " + e.partAddr + " ",
		"try g1 a",
		"rollback g1 wait=false",
	})
	if r := e.coord.reason(0); !strings.Contains(r, "insufficient funds") {
		t.Fatalf("rollback reason = %q", r)
	}

	_, err = e.client.Run(context.Background(), client.BeginOptions{GID: "g2"}, func(context.Context, *client.Txn) error {
		return errBusiness
	})
	if !errors.Is(err, errBusiness) {
		t.Fatalf("Run error = %v, want it to wrap errBusiness", err)
	}
}

func TestRunRollsBackOnPanic(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		_, _ = e.client.Run(context.Background(), client.BeginOptions{GID: "g1"}, func(context.Context, *client.Txn) error {
			panic("boom")
		})
	}()
	if recovered != "boom" {
		t.Fatalf("recovered %v, want the original panic value", recovered)
	}
	equalEvents(t, e.rec.list(), []string{"begin g1", "rollback g1 wait=false"})
	if r := e.coord.reason(0); r != "panic: boom" {
		t.Fatalf("rollback reason = %q", r)
	}
}

func TestRunRollsBackWhenContextCancelled(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := e.client.Run(ctx, client.BeginOptions{GID: "g1"}, func(ctx context.Context, tx *client.Txn) error {
		cancel()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	equalEvents(t, e.rec.list(), []string{"begin g1", "rollback g1 wait=false"})
	e.coord.mu.Lock()
	defer e.coord.mu.Unlock()
	if e.coord.rbCtxErr[0] != nil {
		t.Fatalf("rollback arrived with a done context: %v", e.coord.rbCtxErr[0])
	}
	if e.coord.states["g1"] != tccv1.TransactionState_TRANSACTION_STATE_ABORTING {
		t.Fatalf("state = %v", e.coord.states["g1"])
	}
}

func TestRunUnknownCommitOutcome(t *testing.T) {
	t.Parallel()
	t.Run("commit won", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.coord.set(func(f *fakeCoordinator) {
			f.commitErr = status.Error(codes.DeadlineExceeded, "reply lost")
			f.commitApplies = true
		})
		txn, err := e.client.Run(context.Background(), client.BeginOptions{GID: "g1"}, func(context.Context, *client.Txn) error { return nil })
		if err != nil {
			t.Fatalf("Run: %v, want nil: the commit was decided", err)
		}
		if txn.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTING {
			t.Fatalf("state = %v", txn.GetState())
		}
	})
	t.Run("rollback won", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.coord.set(func(f *fakeCoordinator) { f.commitErr = status.Error(codes.DeadlineExceeded, "never arrived") })
		txn, err := e.client.Run(context.Background(), client.BeginOptions{GID: "g1"}, func(context.Context, *client.Txn) error { return nil })
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("Run error = %v, want DeadlineExceeded", err)
		}
		if txn.GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTING {
			t.Fatalf("state = %v", txn.GetState())
		}
	})
	t.Run("definite failure", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.coord.set(func(f *fakeCoordinator) {
			f.commitErr = status.Error(codes.FailedPrecondition, "transaction g1 is ABORTING")
		})
		_, err := e.client.Run(context.Background(), client.BeginOptions{GID: "g1"}, func(context.Context, *client.Txn) error { return nil })
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("Run error = %v", err)
		}
		equalEvents(t, e.rec.list(), []string{"begin g1", "commit g1 wait=false"})
	})
}

func TestConcurrentTries(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	tx, err := e.client.Begin(ctx, client.BeginOptions{GID: "g1"})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() { errs <- tx.Try(ctx, fmt.Sprintf("b%d", i), e.partAddr, nil) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Try: %v", err)
		}
	}
	if n := len(e.part.tries()); n != 20 {
		t.Fatalf("participant saw %d tries, want 20", n)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	tx, err := e.client.Begin(ctx, client.BeginOptions{GID: "g1"})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if err := tx.Try(ctx, "b1", e.partAddr, nil); err != nil {
		t.Fatalf("Try: %v", err)
	}
	if err := e.client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.client.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := tx.Try(ctx, "b2", e.partAddr, nil); err == nil {
		t.Fatal("Try after Close succeeded")
	}
}

// TestBranchesRegisteredAtBegin: branches given to Begin travel in the
// BeginRequest, and Try of such a branch with the same participant and
// payload goes straight to the participant; any other Try registers first.
func TestBranchesRegisteredAtBegin(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	payload := []byte("p1")
	tx, err := e.client.Begin(ctx, client.BeginOptions{GID: "g1", Branches: []client.Branch{{ID: "b1", Participant: e.partAddr, Payload: payload}}})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	payload[0] = 'X' // the SDK keeps its own copy
	e.coord.mu.Lock()
	got := e.coord.begins[0].GetBranches()
	e.coord.mu.Unlock()
	if len(got) != 1 || got[0].GetBranchId() != "b1" || got[0].GetParticipant() != e.partAddr || string(got[0].GetPayload()) != "p1" {
		t.Fatalf("BeginRequest.branches = %v", got)
	}
	for _, try := range []struct{ id, payload string }{{"b1", "p1"}, {"b2", "p2"}, {"b1", "changed"}} {
		if err := tx.Try(ctx, try.id, e.partAddr, []byte(try.payload)); err != nil {
			t.Fatalf("Try %s: %v", try.id, err)
		}
	}
	equalEvents(t, e.rec.list(), []string{
		"begin g1",
		"try g1 b1",
		"register g1 b2 " + e.partAddr + " p2",
		"try g1 b2",
		"register g1 b1 " + e.partAddr + " changed",
		"try g1 b1",
	})
}
