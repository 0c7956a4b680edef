package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/demo"
)

// order -local end to end: a real coordinator, serve (participants and the
// decider over one SQLite database), and the order command committing the
// order row with the decision in one local transaction; a refused order
// leaves no row.
func TestOrderLocal(t *testing.T) {
	dir := t.TempDir()
	coord, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", DB: "sqlite:" + filepath.Join(dir, "coord.db")}, nil)
	if err != nil {
		t.Fatalf("start coordinator: %v", err)
	}
	t.Cleanup(func() { _ = coord.Shutdown(context.Background()) })

	spec := "sqlite:" + filepath.Join(dir, "demo.db")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var logs syncBuffer
	go func() {
		done <- run(ctx, []string{"-listen", addr, "-db", spec, "-coordinator", coord.Addr()}, io.Discard, &logs)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exit %d; logs:\n%s", code, logs.String())
		}
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := healthpb.NewHealthClient(conn).Check(wctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("serve never became healthy: %v", err)
	}

	var out bytes.Buffer
	code := run(ctx, []string{"order", "-local", "-user", "alice", "-sku", "book", "-db", spec, "-participant", addr, "-coordinator", coord.Addr()}, &out, io.Discard)
	if code != exitOK {
		t.Fatalf("order -local exit %d:\n%s", code, out.String())
	}
	for _, want := range []string{"outcome: COMMITTED", "state:   COMMITTED", "accounts   CONFIRMED", "committed locally with the decision"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("order -local output lacks %q:\n%s", want, out.String())
		}
	}
	gid := regexp.MustCompile(`gid:\s+(\S+)`).FindStringSubmatch(out.String())[1]

	db, _, err := database.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer database.Close(db)
	if o, err := demo.LookupOrder(ctx, db, gid); err != nil || o.SKU != "book" || o.Amount != 1500 {
		t.Fatalf("demo_order row = %+v, %v", o, err)
	}
	// The decider answers from the row the local transaction wrote.
	ans, err := tccv1.NewDeciderServiceClient(conn).Decide(wctx, &tccv1.DecideRequest{Gid: gid})
	if err != nil || ans.GetOutcome() != tccv1.Outcome_OUTCOME_COMMIT {
		t.Fatalf("decider on %s = %v, %v; want COMMIT", gid, ans, err)
	}

	// bob cannot pay: the Try is refused, nothing is committed locally.
	out.Reset()
	code = run(ctx, []string{"order", "-local", "-user", "bob", "-sku", "book", "-db", spec, "-participant", addr, "-coordinator", coord.Addr()}, &out, io.Discard)
	if code != exitRefused {
		t.Fatalf("bob's order -local exit %d, want %d:\n%s", code, exitRefused, out.String())
	}
	if !strings.Contains(out.String(), "no order row") {
		t.Fatalf("bob's order output lacks the missing row:\n%s", out.String())
	}
	bobGID := regexp.MustCompile(`gid:\s+(\S+)`).FindStringSubmatch(out.String())[1]
	if _, err := demo.LookupOrder(ctx, db, bobGID); err != demo.ErrNoOrder {
		t.Fatalf("bob's order row: %v, want ErrNoOrder", err)
	}
}
