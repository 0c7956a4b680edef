package participant_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/clocktest"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/participant"
)

// The test business: one item "x" whose stock moves between available,
// reserved and sold, and a log with one row per committed handler run.
var businessDDL = []string{
	"CREATE TABLE sdk_stock (id VARCHAR(16) NOT NULL PRIMARY KEY, available BIGINT NOT NULL, reserved BIGINT NOT NULL, sold BIGINT NOT NULL)",
	"CREATE TABLE sdk_log (op VARCHAR(16) NOT NULL, gid VARCHAR(128) NOT NULL, branch_id VARCHAR(64) NOT NULL)",
	"INSERT INTO sdk_stock (id, available, reserved, sold) VALUES ('x', 100, 0, 0)",
}

var errOutOfStock = participant.Refusal("out of stock")

// qty parses a payload: a positive decimal quantity.
func qty(r participant.Request) (int64, error) {
	n, err := strconv.ParseInt(string(r.Payload), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("payload %q is not a positive quantity", r.Payload)
	}
	return n, nil
}

func logRun(tx *gorm.DB, op string, r participant.Request) error {
	return tx.Exec("INSERT INTO sdk_log (op, gid, branch_id) VALUES (?, ?, ?)", op, r.GID, r.BranchID).Error
}

// guarded runs a guarded UPDATE that must change exactly one row.
func guarded(tx *gorm.DB, q string, args ...any) error {
	res := tx.Exec(q, args...)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return status.Error(codes.Internal, "reservation missing")
	}
	return nil
}

func handlers(cfg *participant.Config) {
	cfg.CheckRequest = func(r participant.Request) error { _, err := qty(r); return err }
	cfg.Try = func(ctx context.Context, tx *gorm.DB, r participant.Request) error {
		n, _ := qty(r)
		res := tx.Exec("UPDATE sdk_stock SET available = available - ?, reserved = reserved + ? WHERE id = 'x' AND available >= ?", n, n, n)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return fmt.Errorf("%w: %d wanted", errOutOfStock, n)
		}
		return logRun(tx, "try", r)
	}
	cfg.Confirm = func(ctx context.Context, tx *gorm.DB, r participant.Request) error {
		n, _ := qty(r)
		if err := guarded(tx, "UPDATE sdk_stock SET reserved = reserved - ?, sold = sold + ? WHERE id = 'x' AND reserved >= ?", n, n, n); err != nil {
			return err
		}
		return logRun(tx, "confirm", r)
	}
	cfg.Cancel = func(ctx context.Context, tx *gorm.DB, r participant.Request) error {
		n, _ := qty(r)
		if err := guarded(tx, "UPDATE sdk_stock SET reserved = reserved - ?, available = available + ? WHERE id = 'x' AND reserved >= ?", n, n, n); err != nil {
			return err
		}
		return logRun(tx, "cancel", r)
	}
}

// env is a migrated database with the test business, a Participant served
// over loopback gRPC, and a manual clock.
type env struct {
	db    *gorm.DB
	p     *participant.Participant
	pc    tccv1.ParticipantServiceClient
	addr  string
	clock *clocktest.Clock
	// drop, when set, makes the server answer Confirm and Cancel with
	// UNAVAILABLE without running them: the coordinator's calls are lost.
	drop atomic.Bool
}

type option func(*participant.Config)

func setup(t *testing.T, spec string, opts ...option) *env {
	t.Helper()
	ctx := context.Background()
	db := dbtest.Open(t, spec)
	limitPool(t, db)
	for _, q := range businessDDL {
		if err := db.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := participant.Migrate(ctx, db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	e := &env{db: db, clock: clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}
	cfg := participant.Config{DB: db, Clock: e.clock, CheckBackAfter: 30 * time.Second}
	handlers(&cfg)
	for _, o := range opts {
		o(&cfg)
	}
	p, err := participant.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.p = p
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if e.drop.Load() && !strings.HasSuffix(info.FullMethod, "/Try") {
			return nil, status.Error(codes.Unavailable, "dropped by the test")
		}
		return h(ctx, req)
	}))
	tccv1.RegisterParticipantServiceServer(srv, p)
	e.addr = grpctest.Serve(t, srv)
	e.pc = tccv1.NewParticipantServiceClient(grpctest.Dial(t, e.addr))
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) try(t *testing.T, gid, branch, payload string) error {
	_, err := e.pc.Try(ctxT(t), &tccv1.TryRequest{Gid: gid, BranchId: branch, Payload: []byte(payload)})
	return err
}

func (e *env) confirm(t *testing.T, gid, branch, payload string) error {
	_, err := e.pc.Confirm(ctxT(t), &tccv1.ConfirmRequest{Gid: gid, BranchId: branch, Payload: []byte(payload)})
	return err
}

func (e *env) cancel(t *testing.T, gid, branch, payload string) error {
	_, err := e.pc.Cancel(ctxT(t), &tccv1.CancelRequest{Gid: gid, BranchId: branch, Payload: []byte(payload)})
	return err
}

// stock is the row of item "x".
type stock struct{ available, reserved, sold int64 }

func (e *env) stock(t *testing.T) stock {
	t.Helper()
	var s stock
	if err := e.db.Raw("SELECT available, reserved, sold FROM sdk_stock WHERE id = 'x'").Row().Scan(&s.available, &s.reserved, &s.sold); err != nil {
		t.Fatalf("read stock: %v", err)
	}
	return s
}

// runs counts the committed handler runs of op for gid/branch.
func (e *env) runs(t *testing.T, op, gid, branch string) int {
	t.Helper()
	var n int
	if err := e.db.Raw("SELECT COUNT(*) FROM sdk_log WHERE op = ? AND gid = ? AND branch_id = ?", op, gid, branch).Row().Scan(&n); err != nil {
		t.Fatalf("count runs: %v", err)
	}
	return n
}

// record returns the fence record of gid/branch, if any.
func (e *env) record(t *testing.T, gid, branch string) (participant.Record, bool) {
	t.Helper()
	rs, err := e.p.Records(ctxT(t), participant.Query{GID: gid})
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	for _, r := range rs {
		if r.BranchID == branch {
			return r, true
		}
	}
	return participant.Record{}, false
}

func (e *env) wantState(t *testing.T, gid, branch string, want participant.State) {
	t.Helper()
	r, ok := e.record(t, gid, branch)
	if !ok || r.State != want {
		t.Fatalf("fence %s/%s = %+v (found %t), want %s", gid, branch, r, ok, want)
	}
}

// burst runs fn n times at once (released together) and counts the codes.
func burst(n int, fn func() error) map[codes.Code]int {
	m := map[codes.Code]int{}
	for _, c := range grpctest.Burst(n, fn) {
		m[c]++
	}
	return m
}

// limitPool caps db's connections: the tests share one MariaDB server
// (max_connections 151 by default) with other packages' tests, and 50
// concurrent calls still contend through 12 connections.
func limitPool(t *testing.T, db *gorm.DB) {
	t.Helper()
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(12)
}
