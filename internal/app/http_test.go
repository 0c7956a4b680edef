package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/auth"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/limit"
	"github.com/settle-tcc/settle/internal/pkitest"
	"github.com/settle-tcc/settle/internal/server"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

// httpRoute is one call of an HTTP/JSON API route, named by the
// operationId of the OpenAPI description.
type httpRoute struct {
	op, method, path, body string
	roles                  []auth.Role // who may call it
}

// httpRoutes calls every route of the API once, on the transaction
// "auth-open" (begun with branch "a") where a gid is needed.
func httpRoutes(part string) []httpRoute {
	ini, prt, ops, vw := auth.Initiator, auth.Participant, auth.Operator, auth.Viewer
	return []httpRoute{
		{"CoordinatorService_Begin", "POST", "/v1/transactions", `{"gid":"http-auth-begin","timeout":"30s"}`, []auth.Role{ini}},
		{"CoordinatorService_RegisterBranch", "POST", "/v1/transactions/auth-open/branches", `{"branchId":"b","participant":"` + part + `"}`, []auth.Role{ini}},
		{"CoordinatorService_Commit", "POST", "/v1/transactions/auth-commit:commit", `{}`, []auth.Role{ini}},
		{"CoordinatorService_Rollback", "POST", "/v1/transactions/auth-rollback:rollback", `{"reason":"test"}`, []auth.Role{ini}},
		{"CoordinatorService_GetTransaction", "GET", "/v1/transactions/auth-open", "", []auth.Role{ini, prt, ops}},
		{"CoordinatorService_CheckBack", "POST", "/v1/checkback", `{"gid":"auth-open","branchId":"a"}`, []auth.Role{prt}},
		{"AdminService_ListTransactions", "GET", "/v1/admin/transactions?state=TRANSACTION_STATE_TRYING&pageSize=10", "", []auth.Role{ops, vw}},
		{"AdminService_GetTransaction", "GET", "/v1/admin/transactions/auth-open", "", []auth.Role{ops, vw}},
		{"AdminService_RetryNow", "POST", "/v1/admin/transactions/auth-open:retry", `{}`, []auth.Role{ops}},
		{"AdminService_ResolveBranch", "POST", "/v1/admin/transactions/auth-open/branches/a:resolve", `{"state":"BRANCH_STATE_CANCELLED","reason":"test"}`, []auth.Role{ops}},
		{"AdminService_GetTransactionHistory", "GET", "/v1/admin/transactions/auth-open/history", "", []auth.Role{ops, vw}},
		{"AdminService_GetOverview", "GET", "/v1/admin/overview", "", []auth.Role{ops, vw}},
	}
}

// TestHTTPRoutesCoverAPI: the routes the HTTP tests call are exactly the
// operations of the served OpenAPI description, so a route added to
// proto/settle/gateway.yaml without a role test fails here.
func TestHTTPRoutesCoverAPI(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(server.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var described, tested []string
	for _, ops := range doc.Paths {
		for _, op := range ops {
			described = append(described, op.OperationID)
		}
	}
	for _, r := range httpRoutes("p") {
		tested = append(tested, r.op)
	}
	sort.Strings(described)
	sort.Strings(tested)
	if !slices.Equal(described, tested) {
		t.Fatalf("the OpenAPI description has %v, the tests call %v", described, tested)
	}
}

// callHTTP sends one request and returns the status and the body.
func callHTTP(t *testing.T, ctx context.Context, hc *http.Client, method, url, body, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// checkHTTPRoles calls every route as every caller and checks each is
// let through exactly where auth.Policy allows its gRPC method: an allowed
// call may fail for its own reasons, never with 401 or 403; a refused one
// is 403 PERMISSION_DENIED.
func checkHTTPRoles(t *testing.T, ctx context.Context, base, part string, callers map[auth.Role]func(method, path, body string) (int, string)) {
	t.Helper()
	for _, r := range httpRoutes(part) {
		for role, call := range callers {
			code, body := call(r.method, r.path, r.body)
			allowed := slices.Contains(r.roles, role)
			switch {
			case allowed && (code == 401 || code == 403):
				t.Errorf("%s %s as %s refused: %d %s", r.method, r.path, role, code, body)
			case !allowed && (code != 403 || !strings.Contains(body, `"code":"PERMISSION_DENIED"`)):
				t.Errorf("%s %s as %s: %d %s, want 403 PERMISSION_DENIED", r.method, r.path, role, code, body)
			}
		}
	}
}

// TestHTTPAuthTokens: over HTTP, every route is authorized by the gRPC
// method it calls, from auth.Policy, with bearer tokens: each role is let
// through where the table says and refused (403) elsewhere; no token or a
// wrong one is 401 with a Bearer challenge; /healthz, /metrics and
// /openapi.json stay open; a header posing as gRPC metadata
// (Grpc-Metadata-Authorization) is not a credential.
func TestHTTPAuthTokens(t *testing.T) {
	part := testparticipant.Start(t)
	a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", DB: dbtest.NewSQLite(t),
		Auth: auth.Config{TokenFile: writeTokenFile(t, tokenLines)}, DisableRecovery: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := "http://" + a.HTTPAddr()
	hc := &http.Client{}
	if code, body := callHTTP(t, ctx, hc, "POST", base+"/v1/transactions", `{"gid":"auth-open","branches":[{"branchId":"a","participant":"`+part.Addr()+`"}]}`, tokInitiator); code != 200 {
		t.Fatalf("begin: %d %s", code, body)
	}
	as := func(token string) func(method, path, body string) (int, string) {
		return func(method, path, body string) (int, string) {
			return callHTTP(t, ctx, hc, method, base+path, body, token)
		}
	}
	checkHTTPRoles(t, ctx, base, part.Addr(), map[auth.Role]func(string, string, string) (int, string){
		auth.Initiator: as(tokInitiator), auth.Participant: as(tokParticipant), auth.Operator: as(tokOperator),
		auth.Viewer: as(tokViewer),
	})

	for _, r := range httpRoutes(part.Addr()) {
		for _, token := range []string{"", "not-a-token-we-know-of"} {
			req, _ := http.NewRequestWithContext(ctx, r.method, base+r.path, strings.NewReader(r.body))
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 || !strings.Contains(string(body), `"code":"UNAUTHENTICATED"`) || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with token %q: %d %q %s, want 401 UNAUTHENTICATED with a Bearer challenge", r.method, r.path, token, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
			}
			if token != "" && strings.Contains(string(body), token) {
				t.Errorf("%s %s: the reply repeats the token", r.method, r.path)
			}
		}
	}
	// Only the Authorization header is a credential.
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/admin/transactions", nil)
	req.Header.Set("Grpc-Metadata-Authorization", "Bearer "+tokOperator)
	if resp, err := hc.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("Grpc-Metadata-Authorization: %v %v, want 401", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	for _, path := range []string{"/healthz", "/metrics", "/openapi.json"} {
		if code, body := callHTTP(t, ctx, hc, "GET", base+path, "", ""); code != 200 {
			t.Errorf("GET %s without a token: %d %s", path, code, body)
		}
	}
}

// TestHTTPAuthMutualTLS: the same table over HTTPS with client
// certificates: each role by its certificate, an unmapped certificate 403
// on every route, a certificate of another CA or none refused at the
// handshake.
func TestHTTPAuthMutualTLS(t *testing.T) {
	ca := pkitest.New(t, "settle-http-auth")
	other := pkitest.New(t, "elsewhere")
	srvCert, srvKey := ca.Leaf("coordinator")
	initCert, initKey := ca.Leaf("orders", pkitest.Names{URIs: []string{"spiffe://shop/orders"}})
	partCert, partKey := ca.Leaf("payments", pkitest.Names{DNS: []string{"payments.svc"}})
	opsCert, opsKey := ca.Leaf("ops-alice")
	unmappedCert, unmappedKey := ca.Leaf("mallory")
	strangerCert, strangerKey := other.Leaf("ops-alice")
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
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	clientWith := func(cert, key string) *http.Client {
		cfg := &tls.Config{RootCAs: pool}
		if cert != "" {
			c, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		t.Cleanup(hc.CloseIdleConnections)
		return hc
	}
	base := "https://" + a.HTTPAddr()
	as := func(hc *http.Client) func(method, path, body string) (int, string) {
		return func(method, path, body string) (int, string) {
			return callHTTP(t, ctx, hc, method, base+path, body, "")
		}
	}
	initiator := as(clientWith(initCert, initKey))
	if code, body := initiator("POST", "/v1/transactions", `{"gid":"auth-open","branches":[{"branchId":"a","participant":"`+part.Addr()+`"}]}`); code != 200 {
		t.Fatalf("begin: %d %s", code, body)
	}
	checkHTTPRoles(t, ctx, base, part.Addr(), map[auth.Role]func(string, string, string) (int, string){
		auth.Initiator: initiator, auth.Participant: as(clientWith(partCert, partKey)), auth.Operator: as(clientWith(opsCert, opsKey)),
	})
	unmapped := as(clientWith(unmappedCert, unmappedKey))
	for _, r := range httpRoutes(part.Addr()) {
		if code, body := unmapped(r.method, r.path, r.body); code != 403 || !strings.Contains(body, "mallory") {
			t.Errorf("%s %s with an unmapped certificate: %d %s, want 403 naming it", r.method, r.path, code, body)
		}
	}
	for name, hc := range map[string]*http.Client{"another CA": clientWith(strangerCert, strangerKey), "no certificate": clientWith("", "")} {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/transactions/auth-open", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("%s: %d, want the handshake refused", name, resp.StatusCode)
		}
	}
}

// TestHTTPInFlightLimit: a gateway route over -max-in-flight is refused at
// once with 429 RESOURCE_EXHAUSTED and Retry-After, counted in
// settle_rpc_shed_total under its gRPC method, and served again once there
// is room.
func TestHTTPInFlightLimit(t *testing.T) {
	h := holdConfirms(t)
	a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", DB: dbtest.NewSQLite(t),
		DisableRecovery: true, Limits: limit.Config{MaxInFlight: 2, RetryAfter: 1500 * time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := "http://" + a.HTTPAddr()
	hc := &http.Client{}
	// Two Commit(wait) calls over HTTP, held at the participant.
	var commits sync.WaitGroup
	for i := range 2 {
		gid := fmt.Sprintf("http-held-%d", i)
		if code, body := callHTTP(t, ctx, hc, "POST", base+"/v1/transactions", `{"gid":"`+gid+`","branches":[{"branchId":"a","participant":"`+h.part.Addr()+`"}]}`, ""); code != 200 {
			t.Fatalf("begin %s: %d %s", gid, code, body)
		}
		commits.Add(1)
		go func() {
			defer commits.Done()
			req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/transactions/"+gid+":commit", strings.NewReader(`{"wait":true}`))
			resp, err := hc.Do(req)
			if err != nil {
				t.Errorf("held commit %s: %v", gid, err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), "TRANSACTION_STATE_COMMITTED") {
				t.Errorf("held commit %s: %d %s", gid, resp.StatusCode, body)
			}
		}()
		select {
		case <-h.entered:
		case <-ctx.Done():
			t.Fatal("the Confirm never reached the participant")
		}
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/transactions", strings.NewReader(`{"gid":"http-over-limit"}`))
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" || !strings.Contains(string(body), `"code":"RESOURCE_EXHAUSTED"`) {
		t.Errorf("Begin over the limit: %d Retry-After %q %s, want 429 RESOURCE_EXHAUSTED, Retry-After 2", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the refusal took %s: it should not wait", d)
	}
	// Open endpoints are not limited.
	if code, _ := callHTTP(t, ctx, hc, "GET", base+"/openapi.json", "", ""); code != 200 {
		t.Errorf("/openapi.json at the limit: %d", code)
	}
	if m := httpGet(t, base+"/metrics"); !strings.Contains(m, `settle_rpc_shed_total{limit="instance",method="/settle.tcc.v1.CoordinatorService/Begin"} 1`) {
		t.Errorf("shed metric:\n%s", grepLines(m, "settle_rpc_shed_total"))
	}
	h.open()
	commits.Wait()
	if code, body := callHTTP(t, ctx, hc, "POST", base+"/v1/transactions", `{"gid":"http-over-limit"}`, ""); code != 200 {
		t.Errorf("Begin once there is room: %d %s", code, body)
	}
	// The refused Begin stored nothing before the retry: it is TRYING now
	// with no branches, begun once.
	if code, body := callHTTP(t, ctx, hc, "GET", base+"/v1/transactions/http-over-limit", "", ""); code != 200 || strings.Contains(body, "branches") {
		t.Errorf("after the retry: %d %s", code, body)
	}
}

// TestHTTPInFlightLimitPerCaller: the per-caller bound counts the gRPC and
// HTTP calls of one identity together: with its one call in flight over
// gRPC, the same token is refused over HTTP (429, limit "caller") while
// another identity is served.
func TestHTTPInFlightLimitPerCaller(t *testing.T) {
	h := holdConfirms(t)
	a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", DB: dbtest.NewSQLite(t), DisableRecovery: true,
		Auth:   auth.Config{TokenFile: writeTokenFile(t, tokenLines)},
		Limits: limit.Config{MaxInFlightPerCaller: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	orders := tccv1.NewCoordinatorServiceClient(dialWith(t, a.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(client.BearerToken(tokInitiator))))
	var commits sync.WaitGroup
	commitHeld(t, ctx, orders, h, "pc-1", &commits)
	base := "http://" + a.HTTPAddr()
	hc := &http.Client{}
	if code, body := callHTTP(t, ctx, hc, "GET", base+"/v1/transactions/pc-1", "", tokInitiator); code != 429 || !strings.Contains(body, "this caller") {
		t.Errorf("orders over HTTP with a call in flight over gRPC: %d %s, want 429 for this caller", code, body)
	}
	if code, body := callHTTP(t, ctx, hc, "GET", base+"/v1/transactions/pc-1", "", tokOperator); code != 200 {
		t.Errorf("another caller over HTTP: %d %s", code, body)
	}
	if m := httpGet(t, base+"/metrics"); !strings.Contains(m, `settle_rpc_shed_total{limit="caller",method="/settle.tcc.v1.CoordinatorService/GetTransaction"} 1`) {
		t.Errorf("shed metric:\n%s", grepLines(m, "settle_rpc_shed_total"))
	}
	h.open()
	commits.Wait()
	if code, body := callHTTP(t, ctx, hc, "GET", base+"/v1/transactions/pc-1", "", tokInitiator); code != 200 {
		t.Errorf("orders once its call finished: %d %s", code, body)
	}
}

// TestHTTPBadInput: malformed JSON, unknown fields, wrong types, trailing
// data, bodies that are not objects and bodies over the bound are each
// refused with 400 INVALID_ARGUMENT on every body-taking route, and
// nothing is stored: the listing afterwards holds only the transaction
// begun on purpose, without branches, and no check-back tombstone.
func TestHTTPBadInput(t *testing.T) {
	e := setup(t, dbtest.NewSQLite(t), withoutRecovery, withHTTP)
	ctx := ctxT(t)
	base := "http://" + e.app.HTTPAddr()
	hc := &http.Client{}
	if code, body := callHTTP(t, ctx, hc, "POST", base+"/v1/transactions", `{"gid":"bad-input-ok","timeout":"60s"}`, ""); code != 200 {
		t.Fatalf("begin: %d %s", code, body)
	}
	huge := base64.StdEncoding.EncodeToString(make([]byte, 6<<20))
	overPayload := base64.StdEncoding.EncodeToString(make([]byte, 65<<10)) // over the 64 KiB payload limit, within the body bound
	bad := []struct{ name, body, want string }{
		{"malformed", `{"gid":"bad-1",`, "not JSON"},
		{"not JSON at all", `gid=bad-2`, "not JSON"},
		{"unknown field", `{"gid":"bad-3","branchId":"a","participant":"127.0.0.1:1","extra":1}`, "unknown field"},
		{"wrong type (number for a string)", `{"gid":3,"branchId":"a","participant":"127.0.0.1:1"}`, "not a valid request"},
		{"wrong type (number for a duration)", `{"gid":"bad-4","timeout":30}`, "not a valid request"},
		{"wrong type (bytes not base64)", `{"gid":"bad-5","branchId":"a","participant":"127.0.0.1:1","payload":"not base64!"}`, "not a valid request"},
		{"trailing object", `{"gid":"bad-6"} {"gid":"bad-6b"}`, "after request body"},
		{"trailing garbage", `{"gid":"bad-7"}x`, "after request body"},
		{"an array", `[{"gid":"bad-8"}]`, "not a valid request"},
		{"null", `null`, "not a valid request"},
		{"oversized body", `{"gid":"bad-9","branchId":"a","participant":"127.0.0.1:1","payload":"` + huge + `"}`, "longer than the limit"},
		{"payload over the payload limit", `{"gid":"bad-10","branchId":"a","participant":"127.0.0.1:1","payload":"` + overPayload + `"}`, "over the limit"},
	}
	routes := []string{"/v1/transactions", "/v1/transactions/bad-input-ok/branches", "/v1/checkback", "/v1/transactions/bad-input-ok:commit"}
	for _, route := range routes {
		for _, tc := range bad {
			if route == "/v1/transactions" && tc.name == "payload over the payload limit" {
				tc.body = `{"gid":"bad-10","branches":[{"branchId":"a","participant":"127.0.0.1:1","payload":"` + overPayload + `"}]}`
			}
			if strings.HasSuffix(route, ":commit") || route == "/v1/checkback" {
				if tc.name == "payload over the payload limit" || tc.name == "unknown field" && route == "/v1/checkback" {
					continue // no payload; CheckBack has branchId, so "unknown field" is tested below
				}
			}
			code, body := callHTTP(t, ctx, hc, "POST", base+route, tc.body, "")
			if code != 400 || !strings.Contains(body, `"code":"INVALID_ARGUMENT"`) || !strings.Contains(body, tc.want) {
				t.Errorf("POST %s, %s: %d %.300s, want 400 INVALID_ARGUMENT saying %q", route, tc.name, code, body, tc.want)
			}
		}
	}
	for _, body := range []string{`{"gid":"bad-11","branchId":"a","verdict":"VERDICT_CONFIRM"}`, `{"gid":"bad-11","branch_id":"a","x":{}}`} {
		if code, got := callHTTP(t, ctx, hc, "POST", base+"/v1/checkback", body, ""); code != 400 || !strings.Contains(got, "unknown field") {
			t.Errorf("check-back with an unknown field %s: %d %s", body, code, got)
		}
	}
	for _, q := range []string{"state=BOGUS", "pageSize=many", "needsAttention=perhaps", "bogus=1"} {
		if code, got := callHTTP(t, ctx, hc, "GET", base+"/v1/admin/transactions?"+q, "", ""); code != 400 || !strings.Contains(got, `"code":"INVALID_ARGUMENT"`) {
			t.Errorf("GET /v1/admin/transactions?%s: %d %s, want 400", q, code, got)
		}
	}
	if code, got := callHTTP(t, ctx, hc, "GET", base+"/v1/nowhere", "", ""); code != 404 || !strings.Contains(got, `"code":"NOT_FOUND"`) {
		t.Errorf("an unknown path: %d %s", code, got)
	}
	if code, got := callHTTP(t, ctx, hc, "DELETE", base+"/v1/transactions/bad-input-ok", "", ""); code != 405 || !strings.Contains(got, `"code":"METHOD_NOT_ALLOWED"`) {
		t.Errorf("DELETE a transaction: %d %s", code, got)
	}

	// Nothing stored: only the transaction begun above, still without
	// branches and TRYING; no gid of the refused calls has a record or a
	// tombstone (a tombstone would be ABORTED in the listing).
	code, list := callHTTP(t, ctx, hc, "GET", base+"/v1/admin/transactions?pageSize=100", "", "")
	if code != 200 {
		t.Fatalf("list: %d %s", code, list)
	}
	var got struct {
		Transactions []struct {
			Gid      string            `json:"gid"`
			State    string            `json:"state"`
			Branches []json.RawMessage `json:"branches"`
		} `json:"transactions"`
	}
	if err := json.Unmarshal([]byte(list), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Transactions) != 1 || got.Transactions[0].Gid != "bad-input-ok" || got.Transactions[0].State != "TRANSACTION_STATE_TRYING" || len(got.Transactions[0].Branches) != 0 {
		t.Fatalf("after the refused calls the store holds %s, want only bad-input-ok, TRYING, without branches", list)
	}
}

// TestHTTPOnlyOrder: an order placed with HTTP calls only (as curl would),
// the participant's Try aside: Begin with its branches, Try at the
// participant, Commit(wait) over HTTP -> COMMITTED with one Confirm per
// branch; another begun bare, its branch registered over HTTP, rolled back
// over HTTP -> ABORTED with one Cancel; a gid with colons in it routes
// right. The HTTP calls are measured in settle_rpc_seconds under their
// gRPC methods.
func TestHTTPOnlyOrder(t *testing.T) {
	e := setup(t, dbtest.NewSQLite(t), withoutRecovery, withHTTP)
	part, participant := e.part, e.pc
	ctx := ctxT(t)
	base := "http://" + e.app.HTTPAddr()
	hc := &http.Client{}
	post := func(path, body string) map[string]any {
		t.Helper()
		code, got := callHTTP(t, ctx, hc, "POST", base+path, body, "")
		if code != 200 {
			t.Fatalf("POST %s %s: %d %s", path, body, code, got)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Fatalf("POST %s: %v in %s", path, err, got)
		}
		return m
	}
	payload := base64.StdEncoding.EncodeToString([]byte(`{"amount":1500}`))

	// Committed.
	post("/v1/transactions", `{"gid":"web-order-1","timeout":"30s","labels":{"shop":"web"},"branches":[`+
		`{"branchId":"pay","participant":"`+part.Addr()+`","payload":"`+payload+`"},`+
		`{"branchId":"stock","participant":"`+part.Addr()+`","payload":"`+payload+`"}]}`)
	for _, b := range []string{"pay", "stock"} {
		if _, err := participant.Try(ctx, &tccv1.TryRequest{Gid: "web-order-1", BranchId: b, Payload: []byte(`{"amount":1500}`)}); err != nil {
			t.Fatal(err)
		}
	}
	res := post("/v1/transactions/web-order-1:commit", `{"wait":true}`)
	if st := res["transaction"].(map[string]any)["state"]; st != "TRANSACTION_STATE_COMMITTED" {
		t.Fatalf("commit: %v", res)
	}
	code, got := callHTTP(t, ctx, hc, "GET", base+"/v1/transactions/web-order-1", "", "")
	if code != 200 || strings.Count(got, "BRANCH_STATE_CONFIRMED") != 2 || !strings.Contains(got, `"shop":"web"`) {
		t.Fatalf("get: %d %s", code, got)
	}
	for _, b := range []string{"pay", "stock"} {
		if n := part.Count("Confirm", "web-order-1", b); n != 1 {
			t.Errorf("Confirm %s: %d calls, want 1", b, n)
		}
	}

	// Rolled back.
	post("/v1/transactions", `{"gid":"web-order-2","timeout":"30s"}`)
	post("/v1/transactions/web-order-2/branches", `{"branchId":"pay","participant":"`+part.Addr()+`","payload":"`+payload+`"}`)
	if _, err := participant.Try(ctx, &tccv1.TryRequest{Gid: "web-order-2", BranchId: "pay", Payload: []byte(`{"amount":1500}`)}); err != nil {
		t.Fatal(err)
	}
	res = post("/v1/transactions/web-order-2:rollback", `{"wait":true,"reason":"out of stock"}`)
	if st := res["transaction"].(map[string]any)["state"]; st != "TRANSACTION_STATE_ABORTED" {
		t.Fatalf("rollback: %v", res)
	}
	if n := part.Count("Cancel", "web-order-2", "pay"); n != 1 {
		t.Errorf("Cancel: %d calls, want 1", n)
	}
	if res := post("/v1/checkback", `{"gid":"web-order-2","branchId":"pay"}`); res["verdict"] != "VERDICT_CANCEL" {
		t.Errorf("check-back of the rolled-back order: %v", res)
	}
	// A gid holding the separators the routes use (":" before a verb, ".").
	post("/v1/transactions", `{"gid":"shop:order.3:commit"}`)
	if res := post("/v1/transactions/shop:order.3:commit:commit", `{"wait":true}`); res["transaction"].(map[string]any)["gid"] != "shop:order.3:commit" {
		t.Errorf("commit of a gid with colons: %v", res)
	}
	if code, got := callHTTP(t, ctx, hc, "GET", base+"/v1/transactions/shop:order.3:commit", "", ""); code != 200 || !strings.Contains(got, "TRANSACTION_STATE_COMMITTED") {
		t.Errorf("get of a gid with colons: %d %s", code, got)
	}

	m := httpGet(t, base+"/metrics")
	for _, method := range []string{"Begin", "RegisterBranch", "Commit", "Rollback", "GetTransaction", "CheckBack"} {
		if !strings.Contains(m, `settle_rpc_seconds_count{code="OK",method="/settle.tcc.v1.CoordinatorService/`+method+`"}`) {
			t.Errorf("no settle_rpc_seconds for %s served over HTTP", method)
		}
	}
}
