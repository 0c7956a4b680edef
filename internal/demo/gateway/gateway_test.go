package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/demo/gateway"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startGateway(t *testing.T) (*gateway.Gateway, *gateway.Client, string) {
	g := gateway.New()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, gateway.NewClient(srv.URL, srv.Client()), srv.URL
}

func TestGatewaySemantics(t *testing.T) {
	g, c, base := startGateway(t)
	ctx := ctxT(t)

	if o, err := c.Query(ctx, "o1"); err != nil || o.Status != gateway.Unknown {
		t.Fatalf("query unseen order = %+v, %v; want unknown", o, err)
	}
	if o, err := c.Pay(ctx, "o1", 1500); err != nil || o.Status != gateway.Paid || o.Amount != 1500 {
		t.Fatalf("pay = %+v, %v", o, err)
	}
	if _, err := c.Pay(ctx, "o1", 1500); err != nil {
		t.Fatalf("repeated pay: %v", err)
	}
	if g.Payments() != 1 {
		t.Fatalf("payments = %d after a repeated pay, want 1", g.Payments())
	}
	if _, err := c.Close(ctx, "o1"); !errors.Is(err, gateway.ErrPaid) {
		t.Fatalf("close a paid order: %v, want ErrPaid", err)
	}
	if o, err := c.Close(ctx, "o2"); err != nil || o.Status != gateway.Closed {
		t.Fatalf("close an unseen order = %+v, %v; want closed", o, err)
	}
	if _, err := c.Pay(ctx, "o2", 1500); !errors.Is(err, gateway.ErrClosed) {
		t.Fatalf("pay a closed order: %v, want ErrClosed", err)
	}

	g.LosePayReplies(1)
	if _, err := c.Pay(ctx, "o3", 700); err == nil {
		t.Fatal("pay with a lost reply succeeded; want an error (outcome unknown)")
	}
	if o := g.Order("o3"); o.Status != gateway.Paid {
		t.Fatalf("after a lost reply the order is %s, want paid (the payment was applied)", o.Status)
	}

	for _, body := range []string{``, `{}`, `{"order_id":"x"}`, `{"order_id":"x","amount":-1}`, `{"order_id":"` + strings.Repeat("x", 200) + `","amount":1}`, `{"order_id":"x","amount":1,"extra":1}`} {
		resp, err := http.Post(base+"/pay", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("pay %q: status %d, want 400", body, resp.StatusCode)
		}
	}
}

// world is a coordinator, an inventory participant, the gateway and the
// adapter serving the coordinator's decider calls over gRPC.
type world struct {
	gw      *gateway.Gateway
	gc      *gateway.Client
	stock   *testparticipant.Server
	coord   *app.App
	cl      *client.Client
	decider string
}

func newWorld(t *testing.T) *world {
	g, gc, _ := startGateway(t)
	srv := grpc.NewServer()
	tccv1.RegisterDeciderServiceServer(srv, gateway.NewAdapter(gc))
	decider := grpctest.Serve(t, srv)

	cfg := app.Config{Listen: "127.0.0.1:0", DB: "sqlite:" + filepath.Join(t.TempDir(), "c.db")}
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
	cl, err := client.New(a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return &world{gw: g, gc: gc, stock: testparticipant.Start(t), coord: a, cl: cl, decider: decider}
}

// order begins a transaction with the adapter as its decider (deadline
// 1 s) and tries the stock branch.
func (w *world) order(t *testing.T, ctx context.Context) *client.Txn {
	t.Helper()
	tx, err := w.cl.Begin(ctx, client.BeginOptions{Timeout: time.Second, Decider: w.decider})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if err := tx.Try(ctx, "stock", w.stock.Addr(), []byte("book x1")); err != nil {
		t.Fatalf("try stock: %v", err)
	}
	return tx
}

func (w *world) waitFinal(t *testing.T, ctx context.Context, gid string) *tccv1.Transaction {
	t.Helper()
	for {
		r, err := w.cl.Coordinator().GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: gid})
		if err != nil {
			t.Fatalf("get %s: %v", gid, err)
		}
		switch r.GetTransaction().GetState() {
		case tccv1.TransactionState_TRANSACTION_STATE_COMMITTED, tccv1.TransactionState_TRANSACTION_STATE_ABORTED:
			return r.GetTransaction()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never became final: %v", gid, r.GetTransaction())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// The payment was taken but its reply lost: the initiator cannot tell, so
// it neither commits nor rolls back. At the deadline the coordinator asks
// the adapter, which finds the order paid: the transaction commits and the
// stock branch is confirmed.
func TestLostPayReplyCommitsThroughTheAdapter(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	tx := w.order(t, ctx)
	w.gw.LosePayReplies(1)
	if _, err := w.gc.Pay(ctx, tx.GID(), 1500); err == nil {
		t.Fatal("pay: the reply was to be lost")
	}
	final := w.waitFinal(t, ctx, tx.GID())
	if final.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED {
		t.Fatalf("state %s, want COMMITTED (the order is paid)", final.GetState())
	}
	if n := w.stock.Count("Confirm", tx.GID(), "stock"); n != 1 {
		t.Fatalf("stock confirmed %d times, want 1", n)
	}
	if n := w.stock.Count("Cancel", tx.GID(), "stock"); n != 0 {
		t.Fatalf("stock cancelled %d times, want 0", n)
	}
	if o := w.gw.Order(tx.GID()); o.Status != gateway.Paid || w.gw.Payments() != 1 {
		t.Fatalf("gateway: %+v, %d payments; want paid once", o, w.gw.Payments())
	}
}

// The initiator died before paying (or its pay request was lost before it
// reached the gateway): at the deadline the adapter closes the unpaid
// order and answers abort; the stock branch is cancelled, and a payment
// arriving after that is refused by the gateway.
func TestUnpaidOrderIsClosedAndAborted(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	tx := w.order(t, ctx)
	final := w.waitFinal(t, ctx, tx.GID())
	if final.GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTED {
		t.Fatalf("state %s, want ABORTED (never paid)", final.GetState())
	}
	if n := w.stock.Count("Cancel", tx.GID(), "stock"); n != 1 {
		t.Fatalf("stock cancelled %d times, want 1", n)
	}
	if o := w.gw.Order(tx.GID()); o.Status != gateway.Closed {
		t.Fatalf("gateway order %s, want closed", o.Status)
	}
	if _, err := w.gc.Pay(ctx, tx.GID(), 1500); !errors.Is(err, gateway.ErrClosed) {
		t.Fatalf("a late payment: %v, want ErrClosed", err)
	}
	if w.gw.Payments() != 0 {
		t.Fatalf("payments = %d, want 0", w.gw.Payments())
	}
}

// The gateway is down at the deadline: the adapter cannot answer, the
// transaction stays TRYING (asked again with backoff, never aborted
// without an answer); the payment had gone through before the outage,
// so when the gateway is back the transaction commits.
func TestGatewayDownKeepsTheTransactionPending(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	tx := w.order(t, ctx)
	if _, err := w.gc.Pay(ctx, tx.GID(), 1500); err != nil {
		t.Fatalf("pay: %v", err)
	}
	w.gw.SetDown(true)
	// The initiator's Commit is lost (never sent): wait until the
	// coordinator has asked and been refused twice.
	for {
		r, err := w.cl.Coordinator().GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: tx.GID()})
		if err != nil {
			t.Fatal(err)
		}
		got := r.GetTransaction()
		if got.GetState() != tccv1.TransactionState_TRANSACTION_STATE_TRYING {
			t.Fatalf("state %s while the decider cannot answer, want TRYING", got.GetState())
		}
		if got.GetAttempts() >= 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the decider was never asked: %v", got)
		case <-time.After(10 * time.Millisecond):
		}
	}
	w.gw.SetDown(false)
	final := w.waitFinal(t, ctx, tx.GID())
	if final.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED {
		t.Fatalf("state %s, want COMMITTED", final.GetState())
	}
	if n := w.stock.Count("Confirm", tx.GID(), "stock"); n != 1 {
		t.Fatalf("stock confirmed %d times, want 1", n)
	}
}

// The adapter over the decider's HTTP contract.
func TestAdapterOverHTTP(t *testing.T) {
	_, gc, _ := startGateway(t)
	srv := httptest.NewServer(gateway.NewAdapter(gc))
	defer srv.Close()
	ctx := ctxT(t)
	if _, err := gc.Pay(ctx, "paid-1", 100); err != nil {
		t.Fatal(err)
	}
	for gid, want := range map[string]string{"paid-1": "COMMIT", "never-paid": "ABORT"} {
		resp, err := http.Post(srv.URL+"/decide", "application/json", strings.NewReader(`{"gid":"`+gid+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("decide %s: %d %s, want 200 with %s", gid, resp.StatusCode, b, want)
		}
	}
}
