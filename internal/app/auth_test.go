package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/client"
	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/auth"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/pkitest"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

const (
	tokInitiator   = "orders-token-0123456789"
	tokParticipant = "payments-token-0123456"
	tokOperator    = "alice-token-0123456789"
	tokViewer      = "victor-token-012345678"
)

func writeTokenFile(t *testing.T, lines string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var tokenLines = "# test identities\n" + tokInitiator + ",orders,initiator\n" + tokParticipant + ",payments,participant\n" + tokOperator + ",alice,operator\n" + tokViewer + ",victor,viewer\n"

// rpcCalls are one call of every coordinator and admin method, each on a
// connection given by the caller.
func rpcCalls(ctx context.Context, part string) map[string]func(cc *grpc.ClientConn) error {
	c := func(cc *grpc.ClientConn) tccv1.CoordinatorServiceClient { return tccv1.NewCoordinatorServiceClient(cc) }
	a := func(cc *grpc.ClientConn) adminv1.AdminServiceClient { return adminv1.NewAdminServiceClient(cc) }
	return map[string]func(cc *grpc.ClientConn) error{
		"Begin": func(cc *grpc.ClientConn) error {
			_, err := c(cc).Begin(ctx, &tccv1.BeginRequest{Gid: "auth-begin"})
			return err
		},
		"RegisterBranch": func(cc *grpc.ClientConn) error {
			_, err := c(cc).RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "auth-open", BranchId: "b", Participant: part})
			return err
		},
		"Commit": func(cc *grpc.ClientConn) error {
			_, err := c(cc).Commit(ctx, &tccv1.CommitRequest{Gid: "auth-commit"})
			return err
		},
		"Rollback": func(cc *grpc.ClientConn) error {
			_, err := c(cc).Rollback(ctx, &tccv1.RollbackRequest{Gid: "auth-rollback"})
			return err
		},
		"GetTransaction": func(cc *grpc.ClientConn) error {
			_, err := c(cc).GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "auth-open"})
			return err
		},
		"CheckBack": func(cc *grpc.ClientConn) error {
			_, err := c(cc).CheckBack(ctx, &tccv1.CheckBackRequest{Gid: "auth-open", BranchId: "a"})
			return err
		},
		"admin.ListTransactions": func(cc *grpc.ClientConn) error {
			_, err := a(cc).ListTransactions(ctx, &adminv1.ListTransactionsRequest{})
			return err
		},
		"admin.GetTransaction": func(cc *grpc.ClientConn) error {
			_, err := a(cc).GetTransaction(ctx, &adminv1.GetTransactionRequest{Gid: "auth-open"})
			return err
		},
		"admin.RetryNow": func(cc *grpc.ClientConn) error {
			_, err := a(cc).RetryNow(ctx, &adminv1.RetryNowRequest{Gid: "auth-open"})
			return err
		},
		"admin.ResolveBranch": func(cc *grpc.ClientConn) error {
			_, err := a(cc).ResolveBranch(ctx, &adminv1.ResolveBranchRequest{Gid: "auth-open", BranchId: "a", State: tccv1.BranchState_BRANCH_STATE_CANCELLED, Reason: "test"})
			return err
		},
	}
}

// mayCall is who may call each method of rpcCalls.
var mayCall = map[string][]auth.Role{
	"Begin": {auth.Initiator}, "RegisterBranch": {auth.Initiator}, "Commit": {auth.Initiator}, "Rollback": {auth.Initiator},
	"GetTransaction": {auth.Initiator, auth.Participant, auth.Operator}, "CheckBack": {auth.Participant},
	"admin.ListTransactions": {auth.Operator, auth.Viewer}, "admin.GetTransaction": {auth.Operator, auth.Viewer}, "admin.RetryNow": {auth.Operator}, "admin.ResolveBranch": {auth.Operator},
}

// checkRoles calls every method as every role and checks each is let
// through exactly where the table allows it (a call let through may still
// fail for its own reasons, never with Unauthenticated or PermissionDenied).
func checkRoles(t *testing.T, ctx context.Context, part string, conns map[auth.Role]*grpc.ClientConn) {
	t.Helper()
	for method, call := range rpcCalls(ctx, part) {
		for role, cc := range conns {
			allowed := false
			for _, r := range mayCall[method] {
				allowed = allowed || r == role
			}
			err := call(cc)
			code := status.Code(err)
			switch {
			case allowed && (code == codes.PermissionDenied || code == codes.Unauthenticated):
				t.Errorf("%s as %s refused: %v", method, role, err)
			case !allowed && code != codes.PermissionDenied:
				t.Errorf("%s as %s: %v, want PermissionDenied", method, role, err)
			}
		}
	}
}

func dialWith(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// TestAuthTokens: with a token file every role is allowed where the table
// says and refused elsewhere, over gRPC and HTTP; no token is
// Unauthenticated; health and reflection stay open; a manual resolution
// records the operator's name; SIGHUP's reload swaps the tokens.
func TestAuthTokens(t *testing.T) {
	part := testparticipant.Start(t)
	tokens := writeTokenFile(t, tokenLines)
	a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", DB: dbtest.NewSQLite(t),
		Auth: auth.Config{TokenFile: tokens}, DisableRecovery: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := grpc.WithTransportCredentials(insecure.NewCredentials())
	conns := map[auth.Role]*grpc.ClientConn{
		auth.Initiator:   dialWith(t, a.Addr(), plain, grpc.WithPerRPCCredentials(client.BearerToken(tokInitiator))),
		auth.Participant: dialWith(t, a.Addr(), plain, grpc.WithPerRPCCredentials(client.BearerToken(tokParticipant))),
		auth.Operator:    dialWith(t, a.Addr(), plain, grpc.WithPerRPCCredentials(client.BearerToken(tokOperator))),
		auth.Viewer:      dialWith(t, a.Addr(), plain, grpc.WithPerRPCCredentials(client.BearerToken(tokViewer))),
	}
	init := tccv1.NewCoordinatorServiceClient(conns[auth.Initiator])
	if _, err := init.Begin(ctx, &tccv1.BeginRequest{Gid: "auth-open", Branches: []*tccv1.BranchRegistration{{BranchId: "a", Participant: part.Addr()}}}); err != nil {
		t.Fatal(err)
	}
	checkRoles(t, ctx, part.Addr(), conns)

	anon := dialWith(t, a.Addr(), plain)
	for method, call := range rpcCalls(ctx, part.Addr()) {
		if err := call(anon); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s without a token: %v, want Unauthenticated", method, err)
		}
	}
	wrong := dialWith(t, a.Addr(), plain, grpc.WithPerRPCCredentials(client.BearerToken("not-a-token-we-know-of")))
	_, err = tccv1.NewCoordinatorServiceClient(wrong).GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "auth-open"})
	if status.Code(err) != codes.Unauthenticated || strings.Contains(err.Error(), "not-a-token") {
		t.Errorf("a wrong token: %v, want Unauthenticated without the token in it", err)
	}
	if r, err := healthpb.NewHealthClient(anon).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health without a token: %v %v", r, err)
	}

	// The client SDK sends its token.
	sdk, err := client.New(a.Addr(), client.WithToken(tokInitiator))
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	if _, err := sdk.Begin(ctx, client.BeginOptions{GID: "auth-sdk"}); err != nil {
		t.Errorf("the SDK with an initiator token: %v", err)
	}

	// HTTP: the same table.
	base := "http://" + a.HTTPAddr()
	for _, tc := range []struct {
		method, path, body, token string
		want                      int
	}{
		{"GET", "/v1/transactions/auth-open", "", "", 401},
		{"GET", "/v1/transactions/auth-open", "", "not-a-token-we-know-of", 401},
		{"GET", "/v1/transactions/auth-open", "", tokInitiator, 200},
		{"GET", "/v1/transactions/auth-open", "", tokParticipant, 200},
		{"GET", "/v1/transactions/auth-open", "", tokOperator, 200},
		{"POST", "/v1/checkback", `{"gid":"auth-open","branchId":"a"}`, tokParticipant, 200},
		{"POST", "/v1/checkback", `{"gid":"auth-open","branchId":"a"}`, tokInitiator, 403},
		{"POST", "/v1/checkback", `{"gid":"auth-open","branchId":"a"}`, tokOperator, 403},
		{"POST", "/v1/checkback", `{"gid":"auth-open","branchId":"a"}`, "", 401},
		{"GET", "/healthz", "", "", 200},
		{"GET", "/metrics", "", "", 200},
	} {
		req, err := http.NewRequestWithContext(ctx, tc.method, base+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s with %q: %d %s, want %d", tc.method, tc.path, tc.token, resp.StatusCode, body, tc.want)
		}
		if tc.token != "" && strings.Contains(string(body), tc.token) {
			t.Errorf("%s %s: the reply repeats the token", tc.method, tc.path)
		}
	}

	// Reload: the edited file takes effect; the old tokens stop working.
	newOps := "alice-rotated-0123456789"
	if err := os.WriteFile(tokens, []byte(newOps+",alice,operator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	rotated := dialWith(t, a.Addr(), plain, grpc.WithPerRPCCredentials(client.BearerToken(newOps)))
	if _, err := adminv1.NewAdminServiceClient(rotated).ListTransactions(ctx, &adminv1.ListTransactionsRequest{}); err != nil {
		t.Errorf("the rotated token: %v", err)
	}
	if _, err := adminv1.NewAdminServiceClient(conns[auth.Operator]).ListTransactions(ctx, &adminv1.ListTransactionsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the removed token after reload: %v, want Unauthenticated", err)
	}
}

// TestAuthResolutionRecordsOperator: a branch resolved by hand stores who
// resolved it.
func TestAuthResolutionRecordsOperator(t *testing.T) {
	part := testparticipant.Start(t)
	part.SetBehaviour(func(_ context.Context, method, _, _ string) error {
		if method == "Confirm" {
			return testparticipant.Unavailable("down")
		}
		return nil
	})
	a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", DB: dbtest.NewSQLite(t),
		Auth: auth.Config{TokenFile: writeTokenFile(t, tokenLines)}, DisableRecovery: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := grpc.WithTransportCredentials(insecure.NewCredentials())
	init := tccv1.NewCoordinatorServiceClient(dialWith(t, a.Addr(), plain, grpc.WithPerRPCCredentials(client.BearerToken(tokInitiator))))
	if _, err := init.Begin(ctx, &tccv1.BeginRequest{Gid: "stuck", Branches: []*tccv1.BranchRegistration{{BranchId: "a", Participant: part.Addr()}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := init.Commit(ctx, &tccv1.CommitRequest{Gid: "stuck", Wait: true}); err != nil {
		t.Fatal(err)
	}
	admin := adminv1.NewAdminServiceClient(dialWith(t, a.Addr(), plain, grpc.WithPerRPCCredentials(client.BearerToken(tokOperator))))
	if _, err := admin.ResolveBranch(ctx, &adminv1.ResolveBranchRequest{Gid: "stuck", BranchId: "a", State: tccv1.BranchState_BRANCH_STATE_CONFIRMED, Reason: "confirmed by hand, ticket OPS-9"}); err != nil {
		t.Fatal(err)
	}
	show, err := admin.GetTransaction(ctx, &adminv1.GetTransactionRequest{Gid: "stuck"})
	if err != nil {
		t.Fatal(err)
	}
	if got := show.GetBranchDetails()[0].GetResolution(); !strings.HasPrefix(got, "confirmed by hand, ticket OPS-9 [by alice (operator) at ") {
		t.Fatalf("resolution %q does not say who resolved it", got)
	}
}

// TestAuthMutualTLS: certificate identities by SAN or CN, over gRPC and
// HTTP: a good certificate with the right role is let through, a wrong
// role or an unmapped certificate is PermissionDenied, and a certificate
// from another CA or none at all never gets past the handshake.
func TestAuthMutualTLS(t *testing.T) {
	ca := pkitest.New(t, "settle-auth")
	other := pkitest.New(t, "elsewhere")
	srvCert, srvKey := ca.Leaf("coordinator")
	initCert, initKey := ca.Leaf("orders", pkitest.Names{URIs: []string{"spiffe://shop/orders"}})
	partCert, partKey := ca.Leaf("payments", pkitest.Names{DNS: []string{"payments.svc"}})
	opsCert, opsKey := ca.Leaf("ops-alice")
	unmappedCert, unmappedKey := ca.Leaf("mallory")
	strangerCert, strangerKey := other.Leaf("ops-alice") // the right name, the wrong CA
	part := testparticipant.Start(t)

	a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", DB: dbtest.NewSQLite(t), DisableRecovery: true,
		TLS:  app.TLSConfig{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: ca.CAFile()},
		Auth: auth.Config{MTLSIdentities: "spiffe://shop/orders=initiator,payments.svc=participant,ops-alice=operator"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(cert, key string) *grpc.ClientConn {
		opts, err := app.ClientDialOptions(ca.CAFile(), cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return dialWith(t, a.Addr(), opts...)
	}
	conns := map[auth.Role]*grpc.ClientConn{
		auth.Initiator:   dial(initCert, initKey),
		auth.Participant: dial(partCert, partKey),
		auth.Operator:    dial(opsCert, opsKey),
	}
	if _, err := tccv1.NewCoordinatorServiceClient(conns[auth.Initiator]).Begin(ctx, &tccv1.BeginRequest{Gid: "auth-open",
		Branches: []*tccv1.BranchRegistration{{BranchId: "a", Participant: part.Addr()}}}); err != nil {
		t.Fatal(err)
	}
	checkRoles(t, ctx, part.Addr(), conns)
	_, err = tccv1.NewCoordinatorServiceClient(dial(unmappedCert, unmappedKey)).GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "auth-open"})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "mallory") {
		t.Errorf("an unmapped certificate: %v, want PermissionDenied naming it", err)
	}
	for name, cc := range map[string]*grpc.ClientConn{"wrong CA": dial(strangerCert, strangerKey), "no client certificate": dial("", "")} {
		_, err := tccv1.NewCoordinatorServiceClient(cc).GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "auth-open"})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: %v, want the handshake refused (Unavailable)", name, err)
		}
	}

	// HTTP over mutual TLS.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	httpGetAs := func(cert, key string) (int, error) {
		cfg := &tls.Config{RootCAs: pool}
		if cert != "" {
			c, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("https://" + a.HTTPAddr() + "/v1/transactions/auth-open")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, tc := range []struct {
		name, cert, key string
		want            int
	}{
		{"initiator", initCert, initKey, 200},
		{"operator", opsCert, opsKey, 200},
		{"unmapped", unmappedCert, unmappedKey, 403},
	} {
		if got, err := httpGetAs(tc.cert, tc.key); err != nil || got != tc.want {
			t.Errorf("HTTP as %s: %d %v, want %d", tc.name, got, err, tc.want)
		}
	}
	if _, err := httpGetAs(strangerCert, strangerKey); err == nil {
		t.Error("HTTP with a certificate of another CA got past the handshake")
	}
}

// TestAuthSafeDefault: without authentication the coordinator refuses
// non-loopback listeners unless told it is insecure on purpose.
func TestAuthSafeDefault(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  app.Config
		ok   bool
	}{
		{"all interfaces, no auth", app.Config{Listen: "0.0.0.0:0"}, false},
		{"empty host, no auth", app.Config{Listen: ":0"}, false},
		{"HTTP on all interfaces, no auth", app.Config{Listen: "127.0.0.1:0", HTTPListen: "0.0.0.0:0"}, false},
		{"loopback, no auth", app.Config{Listen: "127.0.0.1:0", HTTPListen: "localhost:0"}, true},
		{"all interfaces, -insecure-no-auth", app.Config{Listen: "0.0.0.0:0", InsecureNoAuth: true}, true},
		{"all interfaces, tokens", app.Config{Listen: "0.0.0.0:0", Auth: auth.Config{TokenFile: writeTokenFile(t, tokenLines)}}, true},
		{"mTLS identities without a client CA", app.Config{Listen: "127.0.0.1:0", Auth: auth.Config{MTLSIdentities: "x=operator"}}, false},
	} {
		tc.cfg.DB = dbtest.NewSQLite(t)
		tc.cfg.DisableRecovery = true
		a, err := app.Start(context.Background(), tc.cfg, nil)
		if err == nil {
			_ = a.Shutdown(context.Background())
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: Start = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !tc.ok && strings.Contains(tc.name, "no auth") && !strings.Contains(err.Error(), "-insecure-no-auth") {
			t.Errorf("%s: the refusal does not say how to proceed: %v", tc.name, err)
		}
	}
}
