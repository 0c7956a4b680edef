package faulttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/demo"
)

// Orders whose initiator commits through its own database (issue 18): the
// initiator (an order service) writes its order row and the decision row
// (gid, commit) in one local transaction with the client SDK's
// Txn.CommitLocal, and serves a client.Decider over that database. The
// harness plays the order service: the orders database is one more
// database of the run's backend, the decider a gRPC server in this
// process, reached by the coordinators through a fault proxy
// (coordinator->decider), which the schedule also cuts for a while.
//
// Local order steps (Order.Step of KindLocal):
const (
	// LocalCommit: the SDK commits locally, then calls Commit.
	LocalCommit = 0
	// LocalKilled: the initiator dies between its local commit and the
	// Commit call (the Commit never leaves the process): the coordinator
	// must learn the outcome from the decider at the deadline.
	LocalKilled = 1
	// LocalRefused: the business change is refused inside the local
	// transaction: nothing is committed locally and the branches are
	// cancelled.
	LocalRefused = 2
)

// FaultDeciderCut: the coordinator -> decider link is down for a while.
const FaultDeciderCut FaultKind = "net_partition_coordinator_to_decider"

// LinkCoordToDecider is the link kind of the decider's proxy.
const LinkCoordToDecider = "coordinator->decider"

// errKilled is what the dead initiator's Commit "returns": it was never
// sent.
var errKilled = status.Error(codes.Unavailable, "faulttest: the initiator died before sending Commit")

// errLocalRefused is LocalRefused's business refusal.
var errLocalRefused = errors.New("faulttest: the order service refuses the order")

// orderService is the harness's order service: its database, its decider
// and the SDK clients its initiators use (one per coordinator, and one
// whose Commit never leaves the process).
type orderService struct {
	db      *gorm.DB
	srv     *grpc.Server
	proxy   *Proxy // coordinator -> decider
	clients []*client.Client
	killed  []*client.Client
}

// startOrderService opens spec (creating the order service's tables),
// serves the decider on loopback behind a proxy made by newProxy, and
// creates the SDK clients reaching coordinator i through coordAddrs[i].
func startOrderService(spec string, coordAddrs []string, newProxy func(name, link, backend string) (*Proxy, error)) (s *orderService, err error) {
	s = &orderService{}
	defer func() {
		if err != nil {
			s.close()
			s = nil
		}
	}()
	if s.db, _, err = database.Open(spec); err != nil {
		return s, err
	}
	if err = demo.EnsureOrderService(context.Background(), s.db); err != nil {
		return s, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return s, err
	}
	s.srv = grpc.NewServer()
	tccv1.RegisterDeciderServiceServer(s.srv, client.NewDecider(s.db))
	go func() { _ = s.srv.Serve(lis) }()
	if s.proxy, err = newProxy("coordinator->decider", LinkCoordToDecider, lis.Addr().String()); err != nil {
		return s, err
	}
	dropCommit := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == tccv1.CoordinatorService_Commit_FullMethodName {
			return errKilled
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	for _, addr := range coordAddrs {
		c, err := client.New(addr, client.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
		if err != nil {
			return s, err
		}
		s.clients = append(s.clients, c)
		k, err := client.New(addr, client.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithChainUnaryInterceptor(dropCommit)))
		if err != nil {
			return s, err
		}
		s.killed = append(s.killed, k)
	}
	return s, nil
}

func (s *orderService) close() {
	for _, c := range append(s.clients, s.killed...) {
		_ = c.Close()
	}
	if s.srv != nil {
		s.srv.Stop()
	}
	if s.proxy != nil {
		s.proxy.Close()
	}
	if s.db != nil {
		_ = database.Close(s.db)
	}
}

// local runs a KindLocal order through the client SDK: Begin with the
// decider, Try both branches, CommitLocal.
func (in *Initiator) local(ctx context.Context, o *Order) {
	txns := in.Rec.Txns
	svc := in.C.orders
	cl := svc.clients[o.Coord]
	if o.Step == LocalKilled {
		cl = svc.killed[o.Coord]
	}
	o.Out.BeganAt = time.Now()
	actx, cancel := context.WithTimeout(ctx, in.Timing.TxTimeout+5*time.Second)
	defer cancel()
	var tx *client.Txn
	// A repeated Begin of the same gid with the same options is answered OK.
	err := retryUnknown(actx, func(int) error {
		var err error
		tx, err = cl.Begin(actx, client.BeginOptions{GID: o.GID, Timeout: in.Timing.TxTimeout, Decider: svc.proxy.Addr()})
		return err
	})
	if err != nil {
		txns.AddName("initiator:local_begin_failed", 1)
		return
	}
	o.Out.BeginOK = true
	for _, b := range Branches {
		// An unknown outcome is retried, as Initiator.partCall does (the
		// SDK's Try is idempotent: the registration and the participant's
		// Try are both repeats).
		err := retryUnknown(actx, func(int) error { return tx.Try(actx, b, in.C.ParticipantTarget(b), o.Payload(b)) })
		if err != nil {
			// CommitLocal rolls back: a branch was not tried.
			txns.AddName("initiator:local_try_error:"+status.Code(err).String(), 1)
			break
		}
		o.Out.TriesOK++
	}
	placed := demo.PlacedOrder{GID: o.GID, User: o.User, SKU: o.SKU, Qty: o.Qty, Amount: o.Amount}
	o.Out.CommitAt = time.Now()
	txn, err := tx.CommitLocal(actx, svc.db, func(db *gorm.DB) error {
		if o.Step == LocalRefused {
			return errLocalRefused
		}
		return demo.InsertOrder(db, placed)
	})
	o.Out.CommitReplyAt = time.Now()
	switch {
	case err == nil:
		txns.AddName("initiator:local_committed", 1)
		in.Rec.Observe(o.GID, tccv1.TransactionState_TRANSACTION_STATE_COMMITTING, "commit-local reply")
		in.Rec.Observe(o.GID, txn.GetState(), "commit-local reply")
		o.Out.Local = LocalOutCommitted
	case errors.Is(err, client.ErrCommittedLocally):
		txns.AddName("initiator:local_committed_commit_lost", 1)
		o.Out.Local = LocalOutCommitted
	case errors.Is(err, client.ErrDecidedAbort):
		txns.AddName("initiator:local_decider_answered_abort_first", 1)
		o.Out.Local = LocalOutRolledBack
	case errors.Is(err, errLocalRefused):
		txns.AddName("initiator:local_refused", 1)
		o.Out.Local = LocalOutRolledBack
	case errors.Is(err, client.ErrNotTried):
		txns.AddName("initiator:local_try_failed", 1)
		o.Out.Local = LocalOutRolledBack
	default:
		txns.AddName("initiator:local_error", 1)
		o.Out.Local = LocalOutUnknown
	}
}

// What the local initiator saw (Outcome.Local).
const (
	LocalOutCommitted  = "committed"   // its local transaction committed
	LocalOutRolledBack = "rolled_back" // it did not commit locally
	LocalOutUnknown    = "unknown"     // an error left it unknown
)

// localRows reads the order service's decision rows and order rows.
func (s *orderService) localRows(ctx context.Context) (decisions map[string]string, amounts map[string]int64, err error) {
	decisions, amounts = map[string]string{}, map[string]int64{}
	rows, err := s.db.WithContext(ctx).Raw("SELECT gid, outcome FROM " + client.DecisionTable).Rows()
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var gid, outcome string
		if err := rows.Scan(&gid, &outcome); err != nil {
			rows.Close()
			return nil, nil, err
		}
		decisions[gid] = outcome
	}
	rows.Close()
	rows, err = s.db.WithContext(ctx).Raw("SELECT gid, amount FROM demo_order").Rows()
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var gid string
		var amount int64
		if err := rows.Scan(&gid, &amount); err != nil {
			return nil, nil, err
		}
		amounts[gid] = amount
	}
	return decisions, amounts, rows.Err()
}

// checkLocal holds the order service's own rows to I1 and I6: a local
// order's decision row says commit exactly when the coordinator committed
// it, its order row exists exactly then (written in the same local
// transaction), and the order rows add up to the committed local orders.
func checkLocal(ctx context.Context, c *Cluster, orders []*Order, states map[string]tccv1.TransactionState, missing map[string]bool, violate func(string, ...any)) error {
	if c.orders == nil {
		return nil
	}
	decisions, amounts, err := c.orders.localRows(ctx)
	if err != nil {
		return fmt.Errorf("read the order service's tables: %w", err)
	}
	var want, got int64
	started := map[string]bool{}
	for _, o := range orders {
		started[o.GID] = true
		if o.Kind != KindLocal {
			if _, ok := decisions[o.GID]; ok {
				violate("I1-local %s: a decision row for an order that does not commit locally", o.GID)
			}
			continue
		}
		st := states[o.GID]
		committed := st == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED
		row := decisions[o.GID]
		_, hasOrder := amounts[o.GID]
		switch {
		case row == client.OutcomeCommit && !committed:
			violate("I1-local %s: committed locally (decision row commit, order row %v) but the coordinator's final state is %v (unknown: %v)", o.GID, hasOrder, st, missing[o.GID])
		case committed && row != client.OutcomeCommit:
			violate("I1-local %s: COMMITTED at the coordinator but the decision row is %q", o.GID, row)
		}
		if hasOrder != (row == client.OutcomeCommit) {
			violate("I1-local %s: order row present %v but decision row %q (they commit together)", o.GID, hasOrder, row)
		}
		if o.Out.Local == LocalOutCommitted && row != client.OutcomeCommit {
			violate("I1-local %s: the SDK reported a local commit but the decision row is %q", o.GID, row)
		}
		if o.Step == LocalRefused && hasOrder {
			violate("I1-local %s: the business change was refused but its order row exists", o.GID)
		}
		if committed {
			want += o.Amount
		}
		got += amounts[o.GID]
	}
	for gid := range amounts {
		if !started[gid] {
			violate("I2-local %s: an order row for an order the workload never started", gid)
		}
	}
	if got != want {
		violate("I6-local: the order rows add up to %d, the committed local orders to %d", got, want)
	}
	return nil
}
