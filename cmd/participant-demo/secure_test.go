package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/auth"
	"github.com/settle-tcc/settle/internal/pkitest"
)

// TestOrderAgainstSecuredCoordinator: the demo's serve (check-back) and
// order reach a coordinator that requires mutual TLS and bearer tokens,
// each with its own role; without a token the order is refused.
func TestOrderAgainstSecuredCoordinator(t *testing.T) {
	ca := pkitest.New(t, "demo-ca")
	srvCert, srvKey := ca.Leaf("coordinator")
	cliCert, cliKey := ca.Leaf("demo")
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokens := write("tokens", "demo-initiator-token-0001,shop,initiator\ndemo-participant-token-01,demo,participant\n")
	initTok, partTok := write("init", "demo-initiator-token-0001"), write("part", "demo-participant-token-01")
	a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", DB: "sqlite:" + filepath.Join(dir, "coord.db"),
		TLS:  app.TLSConfig{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: ca.CAFile()},
		Auth: auth.Config{TokenFile: tokens}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	partAddr := lis.Addr().String()
	lis.Close()
	spec := "sqlite:" + filepath.Join(dir, "demo.db")
	tlsFlags := []string{"-coordinator-tls-ca", ca.CAFile(), "-coordinator-tls-cert", cliCert, "-coordinator-tls-key", cliKey}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan int, 1)
	var logs syncBuffer
	go func() {
		served <- run(ctx, append([]string{"serve", "-listen", partAddr, "-db", spec, "-coordinator", a.Addr(), "-token-file", partTok}, tlsFlags...), io.Discard, &logs)
	}()
	conn, err := grpc.NewClient(partAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	if _, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("demo participant: %v\n%s", err, logs.String())
	}

	order := func(extra ...string) (int, string) {
		var out, errOut bytes.Buffer
		args := append([]string{"order", "-coordinator", a.Addr(), "-participant", partAddr, "-db", spec, "-user", "alice", "-sku", "book"}, extra...)
		code := run(ctx, args, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := order(append([]string{"-token-file", initTok}, tlsFlags...)...); code != exitOK || !strings.Contains(out, "outcome: COMMITTED") {
		t.Fatalf("order with TLS and the initiator's token: exit %d\n%s", code, out)
	}
	t.Setenv("SETTLE_TOKEN", "")
	t.Setenv("SETTLE_TOKEN_FILE", "")
	// Without a token the certificate alone decides, and it maps to no role.
	if code, out := order(tlsFlags...); code == exitOK || !strings.Contains(out, "PermissionDenied") {
		t.Fatalf("order without a token: exit %d\n%s", code, out)
	}
	if code, out := order("-token-file", partTok); code == exitOK {
		t.Fatalf("order in plaintext against a TLS coordinator: exit %d\n%s", code, out)
	}
	cancel()
	<-served
}
