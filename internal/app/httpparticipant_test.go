package app_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/httpparticipant"
	"github.com/settle-tcc/settle/internal/pkitest"
)

// fenceParticipant is an HTTP participant on loopback that keeps the
// protocol's fence rules in a map: Try reserves (refused after a Cancel or
// with another payload), Confirm needs a Try, Cancel without a Try is a
// null compensation. force, when set for an operation, is the HTTP status
// it answers instead (-1: no answer until the caller gives up).
type fenceParticipant struct {
	srv *httptest.Server
	URL string

	mu     sync.Mutex
	fence  map[string]string // gid/branch -> TRIED, CONFIRMED, CANCELLED
	calls  map[string]int    // op -> calls
	force  map[string]int    // op -> forced HTTP status
	header map[string]string // last Settle-Gid seen, per op
}

func newFenceParticipant(t *testing.T, tlsCfg *tls.Config) *fenceParticipant {
	p := &fenceParticipant{fence: map[string]string{}, calls: map[string]int{}, force: map[string]int{}, header: map[string]string{}}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	if tlsCfg != nil {
		p.srv.TLS = tlsCfg
		p.srv.StartTLS()
	} else {
		p.srv.Start()
	}
	t.Cleanup(p.srv.Close)
	p.URL = p.srv.URL + "/tcc"
	return p
}

func (p *fenceParticipant) setForce(op string, st int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.force[op] = st
}

func (p *fenceParticipant) state(gid, branch string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fence[gid+"/"+branch]
}

func (p *fenceParticipant) count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[op]
}

func (p *fenceParticipant) serve(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.URL.Path, "/tcc/")
	if !ok || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req tccv1.TryRequest // the three requests have the same fields
	if err := protojson.Unmarshal(body, &req); err != nil || req.GetGid() != r.Header.Get("Settle-Gid") || req.GetBranchId() != r.Header.Get("Settle-Branch-Id") {
		http.Error(w, `{"code":"INVALID_ARGUMENT","message":"bad request"}`, http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.calls[op]++
	p.header[op] = r.Header.Get("Settle-Gid")
	forced := p.force[op]
	key := req.GetGid() + "/" + req.GetBranchId()
	st := p.fence[key]
	answer := http.StatusOK
	msg := ""
	switch {
	case forced != 0:
	case op == "try":
		switch st {
		case "":
			p.fence[key] = "TRIED"
		case "CANCELLED":
			answer, msg = http.StatusConflict, "try after cancel"
		}
	case op == "confirm":
		switch st {
		case "TRIED":
			p.fence[key] = "CONFIRMED"
		case "":
			answer, msg = http.StatusConflict, "confirm without try"
		case "CANCELLED":
			answer, msg = http.StatusConflict, "conflict: confirm after cancel"
		}
	case op == "cancel":
		switch st {
		case "", "TRIED":
			p.fence[key] = "CANCELLED"
		case "CONFIRMED":
			answer, msg = http.StatusConflict, "conflict: cancel after confirm"
		}
	default:
		answer, msg = http.StatusNotFound, "no such operation"
	}
	p.mu.Unlock()
	switch {
	case forced == -1:
		<-r.Context().Done()
		return
	case forced == http.StatusFound:
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
		return
	case forced != 0:
		answer, msg = forced, "forced answer"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(answer)
	if msg != "" {
		_ = json.NewEncoder(w).Encode(map[string]string{"code": "FAILED_PRECONDITION", "message": msg})
	}
}

func sdk(t *testing.T, a *app.App, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(a.Addr(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestHTTPParticipantCommitAbort: an order whose branches are an HTTP
// participant and a gRPC one commits and aborts through the real
// coordinator: the SDK's Try reaches the HTTP participant, the
// coordinator's Confirm and Cancel too; a Cancel before its Try is a null
// compensation that the late Try cannot pass (anti-hanging).
func TestHTTPParticipantCommitAbort(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, withoutRecovery)
		hp := newFenceParticipant(t, nil)
		c := sdk(t, e.app)
		ctx := ctxT(t)
		order := func(gid string) *client.Txn {
			tx, err := c.Begin(ctx, client.BeginOptions{GID: gid, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Try(ctx, "pay", hp.URL, []byte(`{"amount":15}`)); err != nil {
				t.Fatalf("%s: try over HTTP: %v", gid, err)
			}
			if err := tx.Try(ctx, "ship", e.part.Addr(), []byte("ship")); err != nil {
				t.Fatalf("%s: try over gRPC: %v", gid, err)
			}
			return tx
		}
		got, err := order("http-commit").Commit(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED || hp.state("http-commit", "pay") != "CONFIRMED" {
			t.Fatalf("commit: state %v, fence %q", got.GetState(), hp.state("http-commit", "pay"))
		}
		hp.mu.Lock()
		confirmGID := hp.header["confirm"]
		hp.mu.Unlock()
		if confirmGID != "http-commit" {
			t.Errorf("Settle-Gid of the Confirm: %q", confirmGID)
		}
		got, err = order("http-abort").Rollback(ctx, "out of stock", true)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetState() != tccv1.TransactionState_TRANSACTION_STATE_ABORTED || hp.state("http-abort", "pay") != "CANCELLED" {
			t.Fatalf("abort: state %v, fence %q", got.GetState(), hp.state("http-abort", "pay"))
		}

		// Cancel before Try: registered, never tried, rolled back.
		if _, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "http-hang", Branches: []*tccv1.BranchRegistration{
			{BranchId: "pay", Participant: hp.URL, Payload: []byte("p")}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.coord.Rollback(ctx, &tccv1.RollbackRequest{Gid: "http-hang", Wait: true}); err != nil {
			t.Fatal(err)
		}
		if st := e.get(t, "http-hang").GetState(); st != tccv1.TransactionState_TRANSACTION_STATE_ABORTED {
			t.Fatalf("null compensation: %v", st)
		}
		late := httpparticipant.New(httpparticipant.NewHTTPClient(nil, 0, 0, time.Minute), hp.URL)
		if _, err := late.Try(ctx, &tccv1.TryRequest{Gid: "http-hang", BranchId: "pay", Payload: []byte("p")}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("late Try after the Cancel: %v, want FAILED_PRECONDITION", err)
		}
		if hp.state("http-hang", "pay") != "CANCELLED" {
			t.Errorf("fence after the late Try: %q", hp.state("http-hang", "pay"))
		}
	})
}

// TestHTTPParticipantAnswers: each answer class of an HTTP participant's
// Confirm, as the coordinator records it after one delivery round: 409 a
// conflict (flagged, never retried soon), 400 and 422 invalid (flagged,
// longest backoff), 429, 500 and a timeout unknown (retried at the first
// backoff, not flagged), a redirect outside the contract (not followed,
// retried at the first backoff and flagged).
func TestHTTPParticipantAnswers(t *testing.T) {
	e := setup(t, dbtest.NewSQLite(t), withHTTP, func(c *app.Config) {
		c.Coordinator.CallTimeout = 300 * time.Millisecond
	})
	hp := newFenceParticipant(t, nil)
	c := sdk(t, e.app)
	for _, tc := range []struct {
		status  int
		flagged bool
		longest bool
		error   string
	}{
		{409, true, true, "FailedPrecondition"},
		{400, true, true, "InvalidArgument"},
		{422, true, true, "InvalidArgument"},
		{429, false, false, "ResourceExhausted"},
		{500, false, false, "Unavailable"},
		{-1, false, false, "DeadlineExceeded"},
		{302, true, false, "HTTP 302 outside the participant contract"},
		{404, true, false, "HTTP 404 outside the participant contract"},
	} {
		gid := strings.ReplaceAll("answer-"+http.StatusText(tc.status), " ", "-")
		if tc.status == -1 {
			gid = "answer-timeout"
		}
		t.Run(gid, func(t *testing.T) {
			ctx := ctxT(t)
			hp.setForce("confirm", 0)
			tx, err := c.Begin(ctx, client.BeginOptions{GID: gid, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Try(ctx, "pay", hp.URL, []byte("p")); err != nil {
				t.Fatal(err)
			}
			hp.setForce("confirm", tc.status)
			got, err := tx.Commit(ctx, true)
			if err != nil {
				t.Fatal(err)
			}
			if got.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTING {
				t.Fatalf("state %v, want COMMITTING", got.GetState())
			}
			if got.GetNeedsAttention() != tc.flagged {
				t.Errorf("needs attention %v, want %v (last error %q)", got.GetNeedsAttention(), tc.flagged, got.GetLastError())
			}
			if !strings.Contains(got.GetLastError(), tc.error) {
				t.Errorf("last error %q, want it to say %q", got.GetLastError(), tc.error)
			}
			wait := got.GetNextAttemptTime().AsTime().Sub(e.clock.Now())
			if tc.longest != (wait >= 4*time.Minute) {
				t.Errorf("next attempt in %s, want the longest backoff: %v", wait, tc.longest)
			}
			if tc.status == 409 {
				return // a conflict waits for an operator
			}
			// The participant recovers; the next round finishes the branch.
			hp.setForce("confirm", 0)
			e.clock.Advance(wait + time.Second) // the recovery loop's next round
			eventually(t, gid+" COMMITTED once the participant answers 200", func() bool {
				return e.get(t, gid).GetState() == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED
			})
		})
	}
	if n := hp.count("confirm"); n < 15 {
		t.Errorf("%d Confirm calls", n)
	}
	// The metrics count HTTP participants' answers as gRPC ones'.
	m := httpGet(t, "http://"+e.app.HTTPAddr()+"/metrics")
	for _, want := range []string{`settle_branch_calls_total{call="confirm",result="conflict"} 1`, `settle_branch_calls_total{call="confirm",result="invalid"} 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "settle_branch_calls"))
		}
	}
}

// TestHTTPParticipantRegistration: a participant URL with credentials, a
// query, a fragment, a scheme that is not http(s), or a host:port outside
// the allow-list is refused at registration, and nothing is stored.
func TestHTTPParticipantRegistration(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, withoutRecovery, withHTTP, func(c *app.Config) { c.AllowParticipants = "127.0.0.1:*,payments.svc:443" })
		api := "http://" + e.app.HTTPAddr()
		ctx := ctxT(t)
		if _, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "reg"}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			url  string
			code codes.Code
			says string
		}{
			{"http://user:secret@127.0.0.1:8080/tcc", codes.InvalidArgument, "credentials"},
			{"http://127.0.0.1:8080/tcc?x=1", codes.InvalidArgument, "query"},
			{"http://127.0.0.1:8080/tcc#top", codes.InvalidArgument, "fragment"},
			{"ftp://127.0.0.1:21/tcc", codes.InvalidArgument, "scheme"},
			{"http://127.0.0.1:0/tcc", codes.InvalidArgument, "port"},
			{"http://169.254.169.254/latest", codes.PermissionDenied, "allow-list"},
			{"http://payments.svc/tcc", codes.PermissionDenied, "allow-list"}, // port 80, only 443 allowed
			{"http://10.0.0.1:8080/tcc", codes.PermissionDenied, "allow-list"},
		} {
			_, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "reg", BranchId: "b", Participant: tc.url, Payload: []byte("p")})
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("register %s: %v, want %v saying %q", tc.url, err, tc.code, tc.says)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("register %s: the error repeats the password: %v", tc.url, err)
			}
			// The same over the HTTP API: 400 or 403 with the code's name,
			// for RegisterBranch and for Begin with the branch.
			httpStatus, name := 400, "INVALID_ARGUMENT"
			if tc.code == codes.PermissionDenied {
				httpStatus, name = 403, "PERMISSION_DENIED"
			}
			branch := fmt.Sprintf(`{"branchId":"h","participant":%q,"payload":"cA=="}`, tc.url)
			if got := httpPost(t, api+"/v1/transactions/reg/branches", branch, httpStatus); !strings.Contains(got, name) || strings.Contains(got, "secret") {
				t.Errorf("POST branches %s: %s", tc.url, got)
			}
			if got := httpPost(t, api+"/v1/transactions", `{"gid":"reg-http","branches":[`+branch+`]}`, httpStatus); !strings.Contains(got, name) {
				t.Errorf("POST transactions with %s: %s", tc.url, got)
			}
		}
		if _, err := e.coord.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "reg-http"}); status.Code(err) != codes.NotFound {
			t.Errorf("a Begin refused for its participant URL stored a transaction: %v", err)
		}
		if n := len(e.get(t, "reg").GetBranches()); n != 0 {
			t.Fatalf("%d branches stored after refused registrations", n)
		}
		for _, ok := range []string{"https://payments.svc/tcc", "http://127.0.0.1:9/x/"} {
			if _, err := e.coord.RegisterBranch(ctx, &tccv1.RegisterBranchRequest{Gid: "reg", BranchId: "b" + string(rune('0'+len(ok)%10)), Participant: ok, Payload: []byte("p")}); err != nil {
				t.Errorf("register %s: %v", ok, err)
			}
		}
	})
}

// TestHTTPParticipantTLS: an https:// participant that requires a client
// certificate is called with the coordinator's -participant-tls-* files
// (its Confirm) and with the SDK's WithParticipantHTTPClient (its Try).
func TestHTTPParticipantTLS(t *testing.T) {
	ca := pkitest.New(t, "settle-test")
	partCert, partKey := ca.Leaf("participant")
	cliCert, cliKey := ca.Leaf("coordinator")
	pc, err := tls.LoadX509KeyPair(partCert, partKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	hp := newFenceParticipant(t, &tls.Config{Certificates: []tls.Certificate{pc}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if !strings.HasPrefix(hp.URL, "https://127.0.0.1:") {
		t.Fatalf("participant URL %s", hp.URL)
	}
	e := setup(t, dbtest.NewSQLite(t), withoutRecovery, func(c *app.Config) {
		c.TLS.ParticipantCAFile, c.TLS.ParticipantCertFile, c.TLS.ParticipantKeyFile = ca.CAFile(), cliCert, cliKey
	})
	tlsCfg, err := app.ClientTLSConfig(ca.CAFile(), cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	c := sdk(t, e.app, client.WithParticipantHTTPClient(httpparticipant.NewHTTPClient(tlsCfg, 4, 4, time.Minute)))
	ctx := ctxT(t)
	tx, err := c.Begin(ctx, client.BeginOptions{GID: "tls-order"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Try(ctx, "pay", hp.URL, []byte("p")); err != nil {
		t.Fatalf("try over HTTPS: %v", err)
	}
	// Without the client certificate the participant refuses the handshake.
	plain := sdk(t, e.app)
	tx2, err := plain.Begin(ctx, client.BeginOptions{GID: "tls-order-2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx2.Try(ctx, "pay", hp.URL, []byte("p")); status.Code(err) != codes.Unavailable {
		t.Errorf("try without the client certificate: %v, want UNAVAILABLE", err)
	}
	got, err := tx.Commit(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED || hp.state("tls-order", "pay") != "CONFIRMED" {
		t.Fatalf("commit over HTTPS: %v, last error %q", got.GetState(), got.GetLastError())
	}
}
