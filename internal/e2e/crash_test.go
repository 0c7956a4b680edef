package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/demo"
	"github.com/settle-tcc/settle/internal/faults"
	"github.com/settle-tcc/settle/internal/faulttest"
)

// cluster is a coordinator process and a demo participant process, the
// coordinator restartable with or without a fault point.
type cluster struct {
	t        *testing.T
	coordDB  string
	coordAdr string
	coord    *faulttest.Proc
	restarts int
	demoDB   string
	demoAdr  string
	cc       tccv1.CoordinatorServiceClient
	pc       tccv1.ParticipantServiceClient
}

func newCluster(t *testing.T, coordDB string) *cluster {
	c := &cluster{t: t, coordDB: coordDB, coordAdr: freeAddr(t), demoAdr: freeAddr(t),
		demoDB: "sqlite:" + filepath.Join(t.TempDir(), "demo.db")}
	start(t, "participant-demo", bins.Demo, c.demoAdr, nil, "serve", "-listen", c.demoAdr, "-db", c.demoDB)
	c.cc = tccv1.NewCoordinatorServiceClient(conn(t, c.coordAdr))
	c.pc = tccv1.NewParticipantServiceClient(conn(t, c.demoAdr))
	return c
}

func conn(t *testing.T, addr string) *grpc.ClientConn {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// startCoordinator starts (or restarts) the coordinator; fault is a
// SETTLE_FAULT_POINT value or "".
func (c *cluster) startCoordinator(fault string) {
	var env []string
	if fault != "" {
		env = []string{faults.EnvVar + "=" + fault}
	}
	c.coord = start(c.t, "coordinator", bins.Coordinator, c.coordAdr, env,
		"-listen", c.coordAdr, "-http-listen", "", "-db", c.coordDB,
		"-lease-ttl", "2s", "-call-timeout", "1s", "-recovery-interval", "50ms", "-log-level", "debug")
}

// call runs f; if it fails because the coordinator died at its fault
// point, it restarts the coordinator without the fault and runs f again,
// as an initiator retrying an idempotent call would.
func (c *cluster) call(what string, f func(ctx context.Context) error) {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		code := status.Code(err)
		if attempt > 0 || (code != codes.Unavailable && code != codes.DeadlineExceeded && code != codes.Canceled) {
			c.t.Fatalf("%s: %v", what, err)
		}
		if !c.coord.WaitExit(10 * time.Second) {
			c.t.Fatalf("%s failed with %v but the coordinator did not die", what, err)
		}
		c.restarts++
		c.t.Logf("%s: coordinator died (%v); restarting it", what, code)
		c.startCoordinator("")
	}
}

func (c *cluster) state(gid string) *tccv1.Transaction {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.cc.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: gid})
	if err != nil {
		c.t.Fatalf("get %s: %v", gid, err)
	}
	return r.GetTransaction()
}

func (c *cluster) waitState(gid string, want tccv1.TransactionState) *tccv1.Transaction {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tx := c.state(gid)
		if tx.GetState() == want {
			return tx
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s is %v after 30s, want %v", gid, tx.GetState(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) totals() demo.Snapshot {
	c.t.Helper()
	db, _, err := database.Open(c.demoDB)
	if err != nil {
		c.t.Fatal(err)
	}
	defer database.Close(db)
	s, err := demo.Totals(context.Background(), db)
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

func accountOf(s demo.Snapshot, name string) demo.Account {
	for _, a := range s.Accounts {
		if a.Name == name {
			return a
		}
	}
	return demo.Account{}
}

func soldOf(s demo.Snapshot, sku string) int64 {
	for _, st := range s.Stock {
		if st.SKU == sku {
			return st.Sold
		}
	}
	return -1
}

// order runs the initiator's side of one order (alice buys one book):
// Begin, register + Try both branches, Commit with wait. If stopAfter is
// set the initiator vanishes after that many registrations.
func (c *cluster) order(gid string, stopAfter int) {
	price, _ := demo.Price("book")
	branches := []struct {
		id      string
		payload []byte
	}{
		{demo.BranchAccounts, demo.AccountsPayload("alice", price)},
		{demo.BranchInventory, demo.InventoryPayload("book", 1)},
	}
	c.call("begin", func(ctx context.Context) error {
		_, err := c.cc.Begin(ctx, &tccv1.BeginRequest{Gid: gid, Timeout: durationpb.New(3 * time.Second)})
		return err
	})
	for i, b := range branches {
		c.call("register "+b.id, func(ctx context.Context) error {
			_, err := c.cc.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: gid, BranchId: b.id, Participant: c.demoAdr, Payload: b.payload})
			return err
		})
		if stopAfter == i+1 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.pc.Try(ctx, &tccv1.TryRequest{Gid: gid, BranchId: b.id, Payload: b.payload})
		cancel()
		if err != nil {
			c.t.Fatalf("try %s: %v", b.id, err)
		}
	}
	c.call("commit", func(ctx context.Context) error {
		_, err := c.cc.Commit(ctx, &tccv1.CommitRequest{Gid: gid, Wait: true})
		return err
	})
}

// TestCrashAtEachPoint (BRIEF S4): the coordinator is SIGKILLed at each
// named point (after Begin, between registration and Try, after the
// decision and before any Confirm, halfway through the Confirms, before
// the round is recorded), restarted, and every transaction finishes with
// each branch in the decided state and each effect applied exactly once at
// the demo participant.
func TestCrashAtEachPoint(t *testing.T) {
	points := []struct {
		fault     string
		stopAfter int // initiator vanishes after this many registrations (0: completes)
		want      tccv1.TransactionState
	}{
		{"after_begin", 0, tccv1.TransactionState_TRANSACTION_STATE_COMMITTED},
		{"after_register", 0, tccv1.TransactionState_TRANSACTION_STATE_COMMITTED},
		{"after_register:2", 0, tccv1.TransactionState_TRANSACTION_STATE_COMMITTED},
		{"after_decision", 0, tccv1.TransactionState_TRANSACTION_STATE_COMMITTED},
		{"after_branch_call", 0, tccv1.TransactionState_TRANSACTION_STATE_COMMITTED},
		{"before_record_round", 0, tccv1.TransactionState_TRANSACTION_STATE_COMMITTED},
		// The initiator vanishes after the crash between registration and
		// Try: the stale transaction is aborted after its deadline.
		{"after_register", 1, tccv1.TransactionState_TRANSACTION_STATE_ABORTED},
		{"after_register:2", 2, tccv1.TransactionState_TRANSACTION_STATE_ABORTED},
	}
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			for _, p := range points {
				name := p.fault
				if p.stopAfter > 0 {
					name += "/initiator-vanishes"
				}
				t.Run(name, func(t *testing.T) {
					c := newCluster(t, be.New(t))
					c.startCoordinator(p.fault)
					before := c.totals()
					c.order("crash-order", p.stopAfter)
					if c.restarts == 0 && !c.coord.WaitExit(5*time.Second) {
						t.Fatalf("fault point %s was never reached", p.fault)
					}
					if c.restarts == 0 {
						// Died after answering (e.g. during the background
						// round): restart to let recovery finish.
						c.restarts++
						c.startCoordinator("")
					}
					tx := c.waitState("crash-order", p.want)
					wantBranch := tccv1.BranchState_BRANCH_STATE_CONFIRMED
					if p.want == tccv1.TransactionState_TRANSACTION_STATE_ABORTED {
						wantBranch = tccv1.BranchState_BRANCH_STATE_CANCELLED
					}
					for _, b := range tx.GetBranches() {
						if b.GetState() != wantBranch {
							t.Fatalf("branch %s is %v, want %v", b.GetBranchId(), b.GetState(), wantBranch)
						}
					}
					after := c.totals()
					price, _ := demo.Price("book")
					wantAlice := accountOf(before, "alice").Balance
					wantSold := soldOf(before, "book")
					if p.want == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED {
						wantAlice -= price
						wantSold++
					}
					if got := accountOf(after, "alice").Balance; got != wantAlice {
						t.Fatalf("alice balance %d, want %d (effect not applied exactly once)", got, wantAlice)
					}
					if got := soldOf(after, "book"); got != wantSold {
						t.Fatalf("books sold %d, want %d", got, wantSold)
					}
					if after.Frozen != 0 || after.Reserved != 0 || after.Balance != before.Balance {
						t.Fatalf("reservations left or money not conserved: %+v", after)
					}
				})
			}
		})
	}
}
