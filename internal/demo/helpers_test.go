package demo_test

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"gorm.io/gorm"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/demo"
	"github.com/settle-tcc/settle/internal/grpctest"
)

// env is a migrated, seeded demo database served over loopback gRPC.
type env struct {
	db   *gorm.DB
	pc   tccv1.ParticipantServiceClient
	addr string
}

// setup opens spec, migrates and seeds it, and serves resources (all when
// none) on 127.0.0.1:0 until the test ends.
func setup(t *testing.T, spec string, resources ...demo.Resource) *env {
	t.Helper()
	ctx := context.Background()
	db, dialect, err := database.Open(spec)
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	// The tests share one MariaDB server (max_connections 151 by default)
	// with other packages' tests; 50 concurrent calls still contend
	// through 12 connections.
	if sqlDB, err := db.DB(); err == nil {
		sqlDB.SetMaxOpenConns(12)
	}
	if err := demo.Migrate(ctx, db, dialect); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := demo.Seed(ctx, db); err != nil {
		t.Fatalf("Seed: %v", err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	t.Cleanup(func() { _ = database.Close(db) }) // runs after the server stops
	srv := grpc.NewServer()
	tccv1.RegisterParticipantServiceServer(srv, demo.NewServer(db, log, resources...))
	addr := grpctest.Serve(t, srv)
	return &env{db: db, pc: tccv1.NewParticipantServiceClient(grpctest.Dial(t, addr)), addr: addr}
}

func (e *env) try(gid, branch string, payload []byte) error {
	_, err := e.pc.Try(context.Background(), &tccv1.TryRequest{Gid: gid, BranchId: branch, Payload: payload})
	return err
}

func (e *env) confirm(gid, branch string, payload []byte) error {
	_, err := e.pc.Confirm(context.Background(), &tccv1.ConfirmRequest{Gid: gid, BranchId: branch, Payload: payload})
	return err
}

func (e *env) cancel(gid, branch string, payload []byte) error {
	_, err := e.pc.Cancel(context.Background(), &tccv1.CancelRequest{Gid: gid, BranchId: branch, Payload: payload})
	return err
}

func (e *env) totals(t *testing.T) demo.Snapshot {
	t.Helper()
	s, err := demo.Totals(context.Background(), e.db)
	if err != nil {
		t.Fatalf("Totals: %v", err)
	}
	return s
}

// fences returns gid's fence states keyed by "resource/branch".
func (e *env) fences(t *testing.T, gid string) map[string]string {
	t.Helper()
	fs, err := demo.Fences(context.Background(), e.db, gid)
	if err != nil {
		t.Fatalf("Fences: %v", err)
	}
	out := map[string]string{}
	for _, f := range fs {
		out[string(f.Resource)+"/"+f.BranchID] = f.State
	}
	return out
}

// accountView is the (balance, frozen) of one account.
type accountView struct{ balance, frozen int64 }

func account(t *testing.T, s demo.Snapshot, name string) accountView {
	t.Helper()
	for _, a := range s.Accounts {
		if a.Name == name {
			return accountView{a.Balance, a.Frozen}
		}
	}
	t.Fatalf("no account %q", name)
	return accountView{}
}

func stock(t *testing.T, s demo.Snapshot, sku string) demo.Stock {
	t.Helper()
	for _, it := range s.Stock {
		if it.SKU == sku {
			return it
		}
	}
	t.Fatalf("no sku %q", sku)
	return demo.Stock{}
}

// sameTotals fails if the two snapshots differ in any account or item.
func sameTotals(t *testing.T, got, want demo.Snapshot) {
	t.Helper()
	if len(got.Accounts) != len(want.Accounts) || len(got.Stock) != len(want.Stock) {
		t.Fatalf("snapshot shape changed: %+v vs %+v", got, want)
	}
	for i := range got.Accounts {
		if got.Accounts[i] != want.Accounts[i] {
			t.Fatalf("account %+v, want %+v", got.Accounts[i], want.Accounts[i])
		}
	}
	for i := range got.Stock {
		if got.Stock[i] != want.Stock[i] {
			t.Fatalf("stock %+v, want %+v", got.Stock[i], want.Stock[i])
		}
	}
}

// wantEffects checks that, from before to after, each account lost exactly
// what it paid (the merchant gained merchantIn) and each item's sold count
// grew by sold[sku]: the committed effects, each applied once.
func wantEffects(t *testing.T, before, after demo.Snapshot, paid map[string]int64, merchantIn int64, sold map[string]int64) {
	t.Helper()
	for _, a := range after.Accounts {
		want := account(t, before, a.Name).balance - paid[a.Name]
		if a.Name == demo.MerchantAccount {
			want += merchantIn
		}
		if a.Balance != want {
			t.Fatalf("account %s balance %d, want %d", a.Name, a.Balance, want)
		}
	}
	for _, s := range after.Stock {
		if s.Sold != sold[s.SKU] {
			t.Fatalf("sku %s sold %d, want %d", s.SKU, s.Sold, sold[s.SKU])
		}
	}
}
