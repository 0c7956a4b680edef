package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/pkitest"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

// TestMutualTLS: with a server certificate and a client CA the coordinator
// serves only clients presenting a certificate from that CA, and it calls a
// participant that requires mutual TLS with its own client certificate.
func TestMutualTLS(t *testing.T) {
	ca := pkitest.New(t, "settle-test")
	other := pkitest.New(t, "someone-else")
	srvCert, srvKey := ca.Leaf("coordinator")
	cliCert, cliKey := ca.Leaf("initiator")
	partCert, partKey := ca.Leaf("participant")
	strangerCert, strangerKey := other.Leaf("stranger")

	// A participant that requires a client certificate from ca.
	pc, err := tls.LoadX509KeyPair(partCert, partKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	part := testparticipant.StartWith(t, grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pc}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})))

	cfg := app.Config{Listen: "127.0.0.1:0", DB: dbtest.NewSQLite(t), TLS: app.TLSConfig{
		CertFile: srvCert, KeyFile: srvKey, ClientCAFile: ca.CAFile(),
		ParticipantCAFile: ca.CAFile(), ParticipantCertFile: cliCert, ParticipantKeyFile: cliKey,
	}}
	a, err := app.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })

	client := func(t *testing.T, caFile, cert, key string) tccv1.CoordinatorServiceClient {
		return tlsClient(t, a.Addr(), caFile, cert, key)
	}

	t.Run("refused", func(t *testing.T) {
		for name, c := range map[string]tccv1.CoordinatorServiceClient{
			"plaintext":        client(t, "", "", ""),
			"no client cert":   client(t, ca.CAFile(), "", ""),
			"cert of other CA": client(t, ca.CAFile(), strangerCert, strangerKey),
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.Begin(ctx, &tccv1.BeginRequest{Gid: "tls-refused"})
			cancel()
			if status.Code(err) != codes.Unavailable {
				t.Errorf("%s: Begin = %v, want Unavailable (handshake refused)", name, err)
			}
		}
	})

	t.Run("commit over mutual TLS", func(t *testing.T) {
		c := client(t, ca.CAFile(), cliCert, cliKey)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Begin(ctx, &tccv1.BeginRequest{Gid: "tls-1"}); err != nil {
			t.Fatalf("begin: %v", err)
		}
		if _, err := c.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "tls-1", BranchId: "b1", Participant: part.Addr()}); err != nil {
			t.Fatalf("register: %v", err)
		}
		resp, err := c.Commit(ctx, &tccv1.CommitRequest{Gid: "tls-1", Wait: true})
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		if got := resp.GetTransaction().GetState(); got != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED {
			t.Fatalf("state %v, want COMMITTED (Confirm over mutual TLS failed: %q)", got, resp.GetTransaction().GetLastError())
		}
		if n := part.Count("Confirm", "tls-1", "b1"); n != 1 {
			t.Fatalf("participant saw %d Confirms, want 1", n)
		}
	})

	t.Run("bad config is refused at start", func(t *testing.T) {
		for name, tc := range map[string]app.TLSConfig{
			"client CA without cert": {ClientCAFile: ca.CAFile()},
			"cert without key":       {CertFile: srvCert},
			"missing file":           {CertFile: srvCert, KeyFile: filepath.Join(t.TempDir(), "nope.pem")},
			"CA file without PEM":    {CertFile: srvCert, KeyFile: srvKey, ClientCAFile: srvKey},
		} {
			_, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", DB: dbtest.NewSQLite(t), TLS: tc}, nil)
			if err == nil {
				t.Errorf("%s: Start succeeded, want an error", name)
			}
		}
	})
}

// TestTLSReload: Reload (SIGHUP) swaps the server certificate and the
// client CA for new handshakes, while a connection established before
// keeps working; a broken file leaves what is in force.
func TestTLSReload(t *testing.T) {
	oldCA, newCA := pkitest.New(t, "ca-2025"), pkitest.New(t, "ca-2026")
	srvCert, srvKey := oldCA.Leaf("coordinator")
	cliCert, cliKey := oldCA.Leaf("initiator")
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	install := func(cert, key, ca string) {
		t.Helper()
		for src, dst := range map[string]string{cert: certFile, key: keyFile, ca: caFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(srvCert, srvKey, oldCA.CAFile())
	a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", DB: dbtest.NewSQLite(t), DisableRecovery: true,
		TLS: app.TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn := func(ca, cert, key string) tccv1.CoordinatorServiceClient {
		return tlsClient(t, a.Addr(), ca, cert, key)
	}
	established := conn(oldCA.CAFile(), cliCert, cliKey)
	if _, err := established.Begin(ctx, &tccv1.BeginRequest{Gid: "before-reload"}); err != nil {
		t.Fatal(err)
	}

	newSrvCert, newSrvKey := newCA.Leaf("coordinator")
	newCliCert, newCliKey := newCA.Leaf("initiator")
	install(newSrvCert, newSrvKey, newCA.CAFile())
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := established.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "before-reload"}); err != nil {
		t.Fatalf("the connection established before the reload was dropped: %v", err)
	}
	if _, err := conn(newCA.CAFile(), newCliCert, newCliKey).Begin(ctx, &tccv1.BeginRequest{Gid: "after-reload"}); err != nil {
		t.Fatalf("a client of the new CA after the reload: %v", err)
	}
	if _, err := conn(oldCA.CAFile(), cliCert, cliKey).Begin(ctx, &tccv1.BeginRequest{Gid: "old-ca"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("a new connection with the old CA after the reload: %v, want the handshake refused", err)
	}

	// A broken key file: the reload fails and the new CA stays in force.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil {
		t.Fatal("a broken key file reloaded")
	}
	if _, err := conn(newCA.CAFile(), newCliCert, newCliKey).Begin(ctx, &tccv1.BeginRequest{Gid: "after-broken-reload"}); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
}

// tlsClient dials addr with app.ClientDialOptions(ca, cert, key) until
// the test ends.
func tlsClient(t *testing.T, addr, ca, cert, key string) tccv1.CoordinatorServiceClient {
	t.Helper()
	opts, err := app.ClientDialOptions(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return tccv1.NewCoordinatorServiceClient(cc)
}
