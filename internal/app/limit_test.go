package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/auth"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/limit"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

// held blocks Confirm calls until release, so that Commit(wait) calls stay
// in flight at the coordinator for as long as a test needs.
type held struct {
	part    *testparticipant.Server
	once    sync.Once
	release chan struct{}
	entered chan struct{}
}

func holdConfirms(t *testing.T) *held {
	h := &held{part: testparticipant.Start(t), release: make(chan struct{}), entered: make(chan struct{}, 100)}
	h.part.SetBehaviour(func(ctx context.Context, method, _, _ string) error {
		if method != "Confirm" {
			return nil
		}
		h.entered <- struct{}{}
		select {
		case <-h.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	t.Cleanup(h.open)
	return h
}

func (h *held) open() { h.once.Do(func() { close(h.release) }) }

// commitHeld begins gid with one branch on the held participant and sends
// Commit(wait) in the background; it returns once the Confirm is held, so
// the Commit is in flight.
func commitHeld(t *testing.T, ctx context.Context, c tccv1.CoordinatorServiceClient, h *held, gid string, done *sync.WaitGroup) {
	t.Helper()
	if _, err := c.Begin(ctx, &tccv1.BeginRequest{Gid: gid, Branches: []*tccv1.BranchRegistration{{BranchId: "a", Participant: h.part.Addr()}}}); err != nil {
		t.Fatal(err)
	}
	done.Add(1)
	go func() {
		defer done.Done()
		if _, err := c.Commit(ctx, &tccv1.CommitRequest{Gid: gid, Wait: true}); err != nil {
			t.Errorf("held commit %s: %v", gid, err)
		}
	}()
	select {
	case <-h.entered:
	case <-ctx.Done():
		t.Fatal("the Confirm never reached the participant")
	}
}

// TestInFlightLimit: at -max-in-flight, a further call is refused at once
// with RESOURCE_EXHAUSTED and a pushback, over gRPC and HTTP (429); health
// is still answered; when calls finish, new ones are served; the client
// SDK backs off and succeeds once there is room.
func TestInFlightLimit(t *testing.T) {
	h := holdConfirms(t)
	a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", DB: dbtest.NewSQLite(t),
		DisableRecovery: true, Limits: limit.Config{MaxInFlight: 3, RetryAfter: 20 * time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := tccv1.NewCoordinatorServiceClient(cc)
	var commits sync.WaitGroup
	for i := range 3 {
		commitHeld(t, ctx, c, h, fmt.Sprintf("held-%d", i), &commits)
	}

	var trailer metadata.MD
	start := time.Now()
	_, err = c.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "held-0"}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "limit of 3 calls") {
		t.Fatalf("a call over the limit: %v, want RESOURCE_EXHAUSTED", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the refusal took %s: it should not wait", d)
	}
	if got := trailer.Get("grpc-retry-pushback-ms"); len(got) != 1 || got[0] != "20" {
		t.Errorf("pushback trailer %v, want 20", got)
	}
	if r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health at the limit: %v %v", r, err)
	}
	resp, err := http.Get("http://" + a.HTTPAddr() + "/v1/transactions/held-0")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "RESOURCE_EXHAUSTED") {
		t.Errorf("HTTP at the limit: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Two refusals so far (gRPC and HTTP, both GetTransaction).
	if m := httpGet(t, "http://"+a.HTTPAddr()+"/metrics"); !strings.Contains(m, `settle_rpc_shed_total{limit="instance",method="/settle.tcc.v1.CoordinatorService/GetTransaction"} 2`) ||
		!strings.Contains(m, "settle_rpc_in_flight 3") {
		t.Errorf("metrics:\n%s", grepLines(m, "settle_rpc_"))
	}

	// The SDK retries a shed call with backoff (5 attempts in all). Let
	// the held calls finish once a retry has been shed too; the call then
	// succeeds, or, if the machine is so slow that the held calls outlast
	// every attempt, ends RESOURCE_EXHAUSTED with all 5 attempts shed.
	// Either way it was retried, not failed at the first refusal.
	sdk, err := client.New(a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	sdkDone := make(chan error, 1)
	go func() {
		_, err := sdk.Coordinator().GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "held-1"})
		sdkDone <- err
	}()
	shedGets := func() int { // GetTransaction calls shed so far; 2 before the SDK's
		m := httpGet(t, "http://"+a.HTTPAddr()+"/metrics")
		const key = `settle_rpc_shed_total{limit="instance",method="/settle.tcc.v1.CoordinatorService/GetTransaction"} `
		i := strings.Index(m, key)
		if i < 0 {
			return 0
		}
		n, _ := strconv.Atoi(strings.Fields(m[i+len(key):])[0])
		return n
	}
	for shedGets() < 4 {
		select {
		case err := <-sdkDone:
			t.Fatalf("the SDK call ended before a retry was shed: %v", err)
		case <-ctx.Done():
			t.Fatal("the SDK call was never retried")
		case <-time.After(5 * time.Millisecond):
		}
	}
	h.open()
	switch err := <-sdkDone; {
	case err == nil:
	case status.Code(err) == codes.ResourceExhausted && shedGets() == 2+5:
		t.Logf("the held calls outlasted the SDK's 5 attempts: %v", err)
	default:
		t.Fatalf("the SDK call after its retries: %v (%d of its attempts shed)", err, shedGets()-2)
	}
	commits.Wait()
	if _, err := c.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "held-0"}); err != nil {
		t.Fatalf("after the calls finished: %v", err)
	}
}

// TestInFlightLimitPerCaller: one caller at its own limit is refused while
// another is served.
func TestInFlightLimitPerCaller(t *testing.T) {
	h := holdConfirms(t)
	a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", DB: dbtest.NewSQLite(t), DisableRecovery: true,
		Auth:   auth.Config{TokenFile: writeTokenFile(t, tokenLines+"other-initiator-0123456,billing,initiator\n")},
		Limits: limit.Config{MaxInFlightPerCaller: 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := grpc.WithTransportCredentials(insecure.NewCredentials())
	orders := tccv1.NewCoordinatorServiceClient(dialWith(t, a.Addr(), plain, grpc.WithPerRPCCredentials(client.BearerToken(tokInitiator))))
	billing := tccv1.NewCoordinatorServiceClient(dialWith(t, a.Addr(), plain, grpc.WithPerRPCCredentials(client.BearerToken("other-initiator-0123456"))))
	var commits sync.WaitGroup
	commitHeld(t, ctx, orders, h, "o-1", &commits)
	commitHeld(t, ctx, orders, h, "o-2", &commits)
	_, err = orders.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "o-1"})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "this caller") {
		t.Fatalf("orders over its own limit: %v, want RESOURCE_EXHAUSTED", err)
	}
	if _, err := billing.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "o-1"}); err != nil {
		t.Fatalf("another caller was refused: %v", err)
	}
	h.open()
	commits.Wait()
	if _, err := orders.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "o-1"}); err != nil {
		t.Fatalf("orders after its calls finished: %v", err)
	}
}

// TestMaxDeliveryRounds: with one round allowed and it held, the next
// decision is durable at once but its round is left to the recovery loop,
// which delivers it after this instance's lease runs out.
func TestMaxDeliveryRounds(t *testing.T) {
	h := holdConfirms(t)
	e := setup(t, dbtest.NewSQLite(t), func(c *app.Config) {
		c.HTTPListen = "127.0.0.1:0"
		c.Coordinator.MaxRounds = 1
		c.Coordinator.LeaseTTL = 5 * time.Second
		c.Coordinator.CallTimeout = time.Second
	})
	ctx := ctxT(t)
	var commits sync.WaitGroup
	commitHeld(t, ctx, e.coord, h, "first", &commits)
	if _, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "second", Branches: []*tccv1.BranchRegistration{{BranchId: "a", Participant: h.part.Addr()}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "second"})
	if err != nil || resp.GetTransaction().GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTING {
		t.Fatalf("the second commit: %v %v, want decided", resp, err)
	}
	if m := httpGet(t, "http://"+e.app.HTTPAddr()+"/metrics"); !strings.Contains(m, "settle_delivery_rounds_deferred_total 1") {
		t.Fatalf("the deferred round is not counted:\n%s", grepLines(m, "settle_delivery"))
	}
	e.loopCaughtUp(t, func() bool { return h.part.Attempts("Confirm", "second", "a") > 0 })
	if n := h.part.Attempts("Confirm", "second", "a"); n != 0 {
		t.Fatalf("the second round ran (%d Confirms) though the bound was reached", n)
	}
	h.open()
	commits.Wait()
	// After the lease, the recovery loop delivers it.
	e.clock.Advance(6 * time.Second)
	eventually(t, "the deferred round delivered after the lease", func() bool {
		return e.get(t, "second").GetState() == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED
	})
	if n := h.part.Count("Confirm", "second", "a"); n != 1 {
		t.Fatalf("second confirmed %d times, want once", n)
	}
}
