package demo_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/demo"
	"github.com/settle-tcc/settle/internal/grpctest"
)

// miniCoordinator is a stand-in for the real coordinator, enough to drive
// PlaceOrder: it records branches (registered with Begin or one by one) and,
// on Commit or Rollback, calls Confirm or Cancel on each once,
// synchronously. The real coordinator is tested end to end elsewhere.
type miniCoordinator struct {
	tccv1.UnimplementedCoordinatorServiceServer

	mu       sync.Mutex
	states   map[string]tccv1.TransactionState
	branches map[string][]*tccv1.RegisterBranchRequest
	reasons  map[string]string
}

func (m *miniCoordinator) Begin(_ context.Context, req *tccv1.BeginRequest) (*tccv1.BeginResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states[req.GetGid()] = tccv1.TransactionState_TRANSACTION_STATE_TRYING
	for _, b := range req.GetBranches() {
		m.branches[req.GetGid()] = append(m.branches[req.GetGid()], &tccv1.RegisterBranchRequest{
			Gid: req.GetGid(), BranchId: b.GetBranchId(), Participant: b.GetParticipant(), Payload: b.GetPayload()})
	}
	return &tccv1.BeginResponse{Transaction: &tccv1.Transaction{Gid: req.GetGid(), State: m.states[req.GetGid()]}}, nil
}

func (m *miniCoordinator) RegisterBranch(_ context.Context, req *tccv1.RegisterBranchRequest) (*tccv1.RegisterBranchResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.branches[req.GetGid()] = append(m.branches[req.GetGid()], req)
	return &tccv1.RegisterBranchResponse{}, nil
}

// finish decides gid and delivers Confirm or Cancel to every branch.
func (m *miniCoordinator) finish(ctx context.Context, gid string, commit bool) (*tccv1.Transaction, error) {
	m.mu.Lock()
	branches := m.branches[gid]
	m.mu.Unlock()
	for _, b := range branches {
		conn, err := grpc.NewClient(b.GetParticipant(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		pc := tccv1.NewParticipantServiceClient(conn)
		if commit {
			_, err = pc.Confirm(ctx, &tccv1.ConfirmRequest{Gid: gid, BranchId: b.GetBranchId(), Payload: b.GetPayload()})
		} else {
			_, err = pc.Cancel(ctx, &tccv1.CancelRequest{Gid: gid, BranchId: b.GetBranchId(), Payload: b.GetPayload()})
		}
		conn.Close()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "deliver to %s: %v", b.GetBranchId(), err)
		}
	}
	state := tccv1.TransactionState_TRANSACTION_STATE_ABORTED
	if commit {
		state = tccv1.TransactionState_TRANSACTION_STATE_COMMITTED
	}
	m.mu.Lock()
	m.states[gid] = state
	m.mu.Unlock()
	return &tccv1.Transaction{Gid: gid, State: state}, nil
}

func (m *miniCoordinator) Commit(ctx context.Context, req *tccv1.CommitRequest) (*tccv1.CommitResponse, error) {
	txn, err := m.finish(ctx, req.GetGid(), true)
	if err != nil {
		return nil, err
	}
	return &tccv1.CommitResponse{Transaction: txn}, nil
}

func (m *miniCoordinator) Rollback(ctx context.Context, req *tccv1.RollbackRequest) (*tccv1.RollbackResponse, error) {
	m.mu.Lock()
	m.reasons[req.GetGid()] = req.GetReason()
	m.mu.Unlock()
	txn, err := m.finish(ctx, req.GetGid(), false)
	if err != nil {
		return nil, err
	}
	return &tccv1.RollbackResponse{Transaction: txn}, nil
}

func startMiniCoordinator(t *testing.T) (*miniCoordinator, string) {
	t.Helper()
	m := &miniCoordinator{
		states:   map[string]tccv1.TransactionState{},
		branches: map[string][]*tccv1.RegisterBranchRequest{},
		reasons:  map[string]string{},
	}
	srv := grpc.NewServer()
	tccv1.RegisterCoordinatorServiceServer(srv, m)
	return m, grpctest.Serve(t, srv)
}

func TestPlaceOrder(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		coord, target := startMiniCoordinator(t)
		c, err := client.New(target)
		if err != nil {
			t.Fatalf("client.New: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		ctx := context.Background()
		before := e.totals(t)

		// alice buys 6 books: 9000 cents.
		res, err := demo.PlaceOrder(ctx, c, demo.Order{GID: "order-1", User: "alice", SKU: "book", Qty: 6, Participant: e.addr})
		if err != nil || !res.Committed || res.GID != "order-1" {
			t.Fatalf("PlaceOrder = %+v, %v", res, err)
		}
		s := e.totals(t)
		if a := account(t, s, "alice"); a != (accountView{1000, 0}) {
			t.Fatalf("alice = %+v", a)
		}
		if a := account(t, s, demo.MerchantAccount); a != (accountView{9000, 0}) {
			t.Fatalf("merchant = %+v", a)
		}
		if b := stock(t, s, "book"); b != (demo.Stock{SKU: "book", Stock: 4, Sold: 6}) {
			t.Fatalf("book = %+v", b)
		}

		// bob cannot pay for a book: the accounts Try is refused, and the
		// rollback cancels both branches registered with Begin: null
		// compensations, as neither holds a reservation (inventory is never
		// tried).
		mid := e.totals(t)
		res, err = demo.PlaceOrder(ctx, c, demo.Order{GID: "order-2", User: "bob", SKU: "book", Qty: 1, Participant: e.addr})
		if err != nil || res.Committed {
			t.Fatalf("PlaceOrder = %+v, %v; want a refusal", res, err)
		}
		if !strings.HasPrefix(res.Reason, "accounts: insufficient funds") {
			t.Fatalf("reason = %q", res.Reason)
		}
		coord.mu.Lock()
		reason := coord.reasons["order-2"]
		coord.mu.Unlock()
		if reason != res.Reason {
			t.Fatalf("rollback reason %q, want %q", reason, res.Reason)
		}
		sameTotals(t, e.totals(t), mid)
		if f := e.fences(t, "order-2"); f["accounts/accounts"] != demo.StateCancelled || f["inventory/inventory"] != demo.StateCancelled || len(f) != 2 {
			t.Fatalf("fences = %v", f)
		}

		// The merchant can pay for 5 books but only 4 are left: the
		// inventory Try is refused and the rollback releases the money.
		res, err = demo.PlaceOrder(ctx, c, demo.Order{User: demo.MerchantAccount, SKU: "book", Qty: 5, Participant: e.addr})
		if err != nil || res.Committed || !strings.HasPrefix(res.Reason, "inventory: insufficient stock") {
			t.Fatalf("PlaceOrder = %+v, %v; want an inventory refusal", res, err)
		}
		if res.GID == "" {
			t.Fatal("generated gid not reported")
		}
		sameTotals(t, e.totals(t), mid)
		if f := e.fences(t, res.GID); f["accounts/accounts"] != demo.StateCancelled || f["inventory/inventory"] != demo.StateCancelled {
			t.Fatalf("fences = %v", f)
		}

		// Bad input is refused before anything is begun.
		if _, err := demo.PlaceOrder(ctx, c, demo.Order{User: "alice", SKU: "lamp", Qty: 1, Participant: e.addr}); !errors.Is(err, demo.ErrUnknownSKU) {
			t.Fatalf("unknown sku: %v", err)
		}
		if _, err := demo.PlaceOrder(ctx, c, demo.Order{User: "alice", SKU: "pen", Qty: 0, Participant: e.addr}); !errors.Is(err, demo.ErrBadPayload) {
			t.Fatalf("zero qty: %v", err)
		}

		after := e.totals(t)
		if after.Balance != before.Balance || after.Frozen != 0 || after.Reserved != 0 {
			t.Fatalf("not conserved: %+v vs %+v", after, before)
		}
	})
}

func TestPlaceOrderParticipantDown(t *testing.T) {
	t.Parallel()
	coord, target := startMiniCoordinator(t)
	c, err := client.New(target)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// Nothing listens on the discard port, so Try fails with Unavailable
	// (outcome unknown): PlaceOrder rolls back and reports an error. The
	// rollback's Cancel goes to the same dead address, so this stand-in
	// coordinator fails it; the real one would retry.
	res, err := demo.PlaceOrder(context.Background(), c, demo.Order{GID: "order-9", User: "alice", SKU: "pen", Qty: 1, Participant: "127.0.0.1:9"})
	if err == nil || status.Code(err) != codes.Unavailable {
		t.Fatalf("PlaceOrder = %+v, %v; want an Unavailable error", res, err)
	}
	if res.GID != "order-9" || res.Committed {
		t.Fatalf("result = %+v", res)
	}
	coord.mu.Lock()
	_, rolledBack := coord.reasons["order-9"]
	coord.mu.Unlock()
	if !rolledBack {
		t.Fatal("no rollback sent")
	}
}
