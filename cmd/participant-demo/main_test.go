package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/demo"
)

func TestParseServeDefaults(t *testing.T) {
	cfg, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatalf("parseServe: %v", err)
	}
	if cfg.Listen != "127.0.0.1:7501" || cfg.DB != "sqlite:demo.db" || cfg.LogLevel != slog.LevelInfo || cfg.LogFormat != "text" {
		t.Fatalf("defaults = %+v", cfg)
	}
	if len(cfg.Resources) != 2 || cfg.Resources[0] != demo.Accounts || cfg.Resources[1] != demo.Inventory {
		t.Fatalf("resources = %v", cfg.Resources)
	}
}

func TestParseServeFlagsAndEnv(t *testing.T) {
	t.Setenv("SETTLE_DEMO_DB", "mysql:root@tcp(127.0.0.1:3306)/demo")
	t.Setenv("SETTLE_DEMO_LISTEN", "0.0.0.0:1")
	cfg, err := parseServe([]string{"-listen", "127.0.0.1:9000", "-resources", "inventory", "-log-level", "debug"}, io.Discard)
	if err != nil {
		t.Fatalf("parseServe: %v", err)
	}
	// Flags win over the environment.
	if cfg.Listen != "127.0.0.1:9000" || cfg.DB != "mysql:root@tcp(127.0.0.1:3306)/demo" || cfg.LogLevel != slog.LevelDebug {
		t.Fatalf("cfg = %+v", cfg)
	}
	if len(cfg.Resources) != 1 || cfg.Resources[0] != demo.Inventory {
		t.Fatalf("resources = %v", cfg.Resources)
	}
}

func TestParseErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-resources", "loyalty"},
		{"-log-format", "xml"},
		{"-nope"},
		{"stray"},
	} {
		if _, err := parseServe(args, io.Discard); err == nil {
			t.Errorf("parseServe(%q) accepted", args)
		}
	}
	if _, err := parseOrder([]string{"-timeout", "0s"}, io.Discard); err == nil {
		t.Error("parseOrder accepted -timeout 0s")
	}
}

func TestParseOrder(t *testing.T) {
	cfg, err := parseOrder([]string{"-user", "bob", "-sku", "pen", "-qty", "3", "-coordinator", "c:1", "-participant", "p:2", "-timeout", "3s", "-gid", "order-7"}, io.Discard)
	if err != nil {
		t.Fatalf("parseOrder: %v", err)
	}
	want := orderConfig{GID: "order-7", User: "bob", SKU: "pen", Qty: 3, Coordinator: "c:1", Participant: "p:2", DB: "sqlite:demo.db", Timeout: 3 * time.Second}
	if cfg != want {
		t.Fatalf("cfg = %+v, want %+v", cfg, want)
	}
	cfg, err = parseOrder(nil, io.Discard)
	if err != nil || cfg.Coordinator != "127.0.0.1:7400" || cfg.Participant != "127.0.0.1:7501" || cfg.User != "alice" || cfg.SKU != "book" || cfg.Qty != 1 {
		t.Fatalf("defaults = %+v, %v", cfg, err)
	}
}

func TestRunDispatch(t *testing.T) {
	var out, errw bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errw); code != exitError {
		t.Fatalf("unknown command exit %d", code)
	}
	if code := run(context.Background(), []string{"balances", "-h"}, &out, &errw); code != exitOK {
		t.Fatalf("-h exit %d", code)
	}
}

// TestServeAndBalances starts the server on a free port, checks health,
// one Try over gRPC, the balances output, and graceful shutdown.
func TestServeAndBalances(t *testing.T) {
	spec := "sqlite:" + filepath.Join(t.TempDir(), "demo.db")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := lis.Addr().String()
	lis.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var logs syncBuffer
	go func() {
		done <- run(ctx, []string{"-listen", addr, "-db", spec, "-coordinator", "127.0.0.1:1", "-checkback-interval", "10ms"}, io.Discard, &logs)
	}()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	defer conn.Close()
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	hr, err := healthpb.NewHealthClient(conn).Check(cctx,
		&healthpb.HealthCheckRequest{Service: tccv1.ParticipantService_ServiceDesc.ServiceName},
		grpc.WaitForReady(true))
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", hr, err)
	}
	_, err = tccv1.NewParticipantServiceClient(conn).Try(cctx, &tccv1.TryRequest{Gid: "g1", BranchId: "b1", Payload: demo.AccountsPayload("alice", 2550)})
	if err != nil {
		t.Fatalf("Try: %v", err)
	}

	var out bytes.Buffer
	if code := run(ctx, []string{"balances", "-db", spec}, &out, io.Discard); code != exitOK {
		t.Fatalf("balances exit %d", code)
	}
	for _, want := range []string{"alice", "100.00", "25.50", "74.50", "book", "pen"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("balances output lacks %q:\n%s", want, out.String())
		}
	}

	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("serve exit %d; logs:\n%s", code, logs.String())
	}
	if !strings.Contains(logs.String(), "participant-demo: stopped") || !strings.Contains(logs.String(), "check-back enabled") {
		t.Fatalf("logs lack the shutdown:\n%s", logs.String())
	}
}

func TestCents(t *testing.T) {
	for v, want := range map[int64]string{0: "0.00", 5: "0.05", 1500: "15.00", -250: "-2.50"} {
		if got := cents(v); got != want {
			t.Errorf("cents(%d) = %q, want %q", v, got, want)
		}
	}
}

func TestFences(t *testing.T) {
	spec := "sqlite:" + filepath.Join(t.TempDir(), "demo.db")
	db, dialect, err := database.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := demo.Migrate(ctx, db, dialect); err != nil {
		t.Fatal(err)
	}
	if err := demo.Seed(ctx, db); err != nil {
		t.Fatal(err)
	}
	srv := demo.NewServer(db, nil)
	if _, err := srv.Try(ctx, &tccv1.TryRequest{Gid: "g1", BranchId: "accounts", Payload: demo.AccountsPayload("alice", 100)}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Cancel(ctx, &tccv1.CancelRequest{Gid: "g2", BranchId: "inventory", Payload: demo.InventoryPayload("pen", 1)}); err != nil {
		t.Fatal(err)
	}
	_ = database.Close(db)

	var out bytes.Buffer
	if code := run(ctx, []string{"fences", "-db", spec, "-from", "-1h"}, &out, io.Discard); code != exitOK {
		t.Fatalf("fences exit %d", code)
	}
	for _, want := range []string{"GID", "g1", "TRIED", "g2", "CANCELLED", "false"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("fences output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run(ctx, []string{"fences", "-db", spec, "-to", "-1h"}, &out, io.Discard); code != exitOK || strings.Contains(out.String(), "g1") {
		t.Fatalf("fences before an hour ago: exit %d\n%s", code, out.String())
	}
	if code := run(ctx, []string{"fences", "-db", spec, "-from", "yesterday"}, &out, io.Discard); code != exitError {
		t.Fatalf("bad -from exit %d", code)
	}
}

func TestParseServeCheckBack(t *testing.T) {
	cfg, err := parseServe([]string{"-coordinator", "127.0.0.1:7400", "-checkback-after", "1m"}, io.Discard)
	if err != nil || cfg.Coordinator != "127.0.0.1:7400" || cfg.CheckBackAfter != time.Minute || cfg.CheckBackInterval != 5*time.Second {
		t.Fatalf("cfg = %+v, %v", cfg, err)
	}
	if _, err := parseServe([]string{"-checkback-after", "0s"}, io.Discard); err == nil {
		t.Fatal("accepted -checkback-after 0s")
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReadCommandsElsewhere: balances and fences run from a directory with
// no demo database refuse with a message saying what to do, and leave no
// empty database behind; a database without the demo's tables is named as
// such instead of "no such table".
func TestReadCommandsElsewhere(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, args := range [][]string{{"balances"}, {"fences"}} {
		var out, errw bytes.Buffer
		if code := run(context.Background(), args, &out, &errw); code != exitError {
			t.Fatalf("%v in an empty directory: exit %d", args, code)
		}
		if msg := errw.String(); !strings.Contains(msg, "does not exist") || !strings.Contains(msg, "participant-demo serve") {
			t.Errorf("%v: unclear message: %s", args, msg)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("read-only commands created %v", entries)
	}
	other := filepath.Join(dir, "other.db")
	db, _, err := database.Open("sqlite:" + other)
	if err != nil {
		t.Fatal(err)
	}
	_ = database.Close(db)
	var out, errw bytes.Buffer
	if code := run(context.Background(), []string{"balances", "-db", "sqlite:" + other}, &out, &errw); code != exitError ||
		!strings.Contains(errw.String(), "has no demo_account table") {
		t.Fatalf("balances on a foreign database: exit %d: %s", code, errw.String())
	}
}
