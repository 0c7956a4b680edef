package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// TestOpenAPIServedIsGenerated: the description served at /openapi.json
// is the published one (buf generate writes both).
func TestOpenAPIServedIsGenerated(t *testing.T) {
	published, err := os.ReadFile("../../gen/openapi/settle.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(OpenAPI, published) {
		t.Fatal("internal/server/openapi/settle.swagger.json differs from gen/openapi/settle.swagger.json: run go tool -modfile=tools/go.mod buf generate")
	}
	h := newTestHandler(t, &recorder{})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/openapi.json", nil))
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), OpenAPI) || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
}

// recorder is a CoordinatorService that records the requests it is
// given and answers them with empty replies.
type recorder struct {
	tccv1.UnimplementedCoordinatorServiceServer
	mu   sync.Mutex
	reqs []proto.Message
}

func (r *recorder) record(m proto.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, m)
}

func (r *recorder) taken() []proto.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

func (r *recorder) Begin(_ context.Context, req *tccv1.BeginRequest) (*tccv1.BeginResponse, error) {
	r.record(req)
	return &tccv1.BeginResponse{}, nil
}

func (r *recorder) RegisterBranch(_ context.Context, req *tccv1.RegisterBranchRequest) (*tccv1.RegisterBranchResponse, error) {
	r.record(req)
	return &tccv1.RegisterBranchResponse{}, nil
}

func (r *recorder) CheckBack(_ context.Context, req *tccv1.CheckBackRequest) (*tccv1.CheckBackResponse, error) {
	r.record(req)
	return &tccv1.CheckBackResponse{}, nil
}

func newTestHandler(t testing.TB, svc tccv1.CoordinatorServiceServer, ics ...grpc.UnaryServerInterceptor) http.Handler {
	t.Helper()
	local := NewLocal(ics...)
	tccv1.RegisterCoordinatorServiceServer(local, svc)
	adminv1.RegisterAdminServiceServer(local, adminv1.UnimplementedAdminServiceServer{})
	h, err := HTTPHandler(HTTPConfig{Services: local, MaxBodyBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// bodyRoutes are the routes taking a body that the fuzz target posts to,
// with the request each decodes into (the gid of a path is set after).
var bodyRoutes = []struct {
	path string
	msg  func() proto.Message
	gid  string
}{
	{"/v1/transactions", func() proto.Message { return &tccv1.BeginRequest{} }, ""},
	{"/v1/transactions/g-1/branches", func() proto.Message { return &tccv1.RegisterBranchRequest{} }, "g-1"},
	{"/v1/checkback", func() proto.Message { return &tccv1.CheckBackRequest{} }, ""},
}

// FuzzHTTPBody posts arbitrary bodies to the gateway's body-taking routes.
// Whatever the body, the answer is 200 or 400 INVALID_ARGUMENT, never a
// panic or a 5xx; the service is called exactly when the body is one
// valid protobuf-JSON request message (strict protojson: no unknown
// fields, nothing after it; an empty body is the empty message) of at
// most the bound, and then with exactly that message.
func FuzzHTTPBody(f *testing.F) {
	for _, seed := range []string{
		``, `  `, "\f", "\n{}\r\n", `{}`, `{"gid":"a"}`, `{"gid":"a","timeout":"30s","labels":{"k":"v"}}`,
		`{"gid":"a","branches":[{"branchId":"b","participant":"127.0.0.1:1","payload":"aGVsbG8="}]}`,
		`{"branchId":"b","participant":"p","payload":"aGVsbG8="}`, `{"gid":"a","branchId":"b"}`, `{"branch_id":"b"}`,
		`{"gid":"a",`, `{"gid":"a"} {"gid":"b"}`, `{"gid":"a"}x`, `{"gid":"a","extra":1}`, `{"gid":1}`, `{"timeout":30}`,
		`{"payload":"%%%"}`, `[]`, `null`, `"gid"`, `{"gid":"a","gid":"b"}`, `{"gid":"\ud800"}`, "{\"gid\":\"\xff\"}",
		`{"gid":"a"}` + strings.Repeat(" ", 5000), `{"gid":"` + strings.Repeat("x", 5000) + `"}`, `{"labels":{"a":1}}`,
	} {
		for i := range bodyRoutes {
			f.Add(uint8(i), []byte(seed))
		}
	}
	rec := &recorder{}
	h := newTestHandler(f, rec)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := bodyRoutes[int(route)%len(bodyRoutes)]
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", r.path, bytes.NewReader(body)))
		got := rec.taken()

		want := r.msg()
		valid := len(body) <= 4<<10
		if valid && len(bytes.Trim(body, " \t\r\n")) > 0 { // JSON's whitespace
			valid = protojson.Unmarshal(body, want) == nil
		}
		if r.gid != "" {
			want.(*tccv1.RegisterBranchRequest).Gid = r.gid
		}
		switch w.Code {
		case 200:
			if !valid {
				t.Fatalf("POST %s %q: 200, want 400", r.path, body)
			}
			if len(got) != 1 || !proto.Equal(got[0], want) {
				t.Fatalf("POST %s %q: the service got %v, want %v", r.path, body, got, want)
			}
		case 400:
			var e struct{ Code, Message string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code != "INVALID_ARGUMENT" || e.Message == "" {
				t.Fatalf("POST %s %q: 400 with %q, want {code: INVALID_ARGUMENT, message}", r.path, body, w.Body.Bytes())
			}
			if valid {
				t.Fatalf("POST %s %q: 400 %s, want 200", r.path, body, w.Body.Bytes())
			}
			if len(got) != 0 {
				t.Fatalf("POST %s %q: refused, yet the service was called with %v", r.path, body, got)
			}
		default:
			t.Fatalf("POST %s %q: %d %s", r.path, body, w.Code, w.Body.Bytes())
		}
	})
}

// TestLocalCallsLikeGRPC: an in-process call runs the interceptors with
// the full method name, turns the caller's outgoing metadata into incoming
// metadata and forwards none of it, keeps the peer of its context, returns
// the trailers set and gives a plain error the code UNKNOWN.
func TestLocalCallsLikeGRPC(t *testing.T) {
	var seen struct {
		method   string
		incoming metadata.MD
		outgoing bool
		peer     string
	}
	ic := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		seen.method = info.FullMethod
		seen.incoming, _ = metadata.FromIncomingContext(ctx)
		md, _ := metadata.FromOutgoingContext(ctx)
		seen.outgoing = len(md) > 0
		if p, ok := peer.FromContext(ctx); ok {
			seen.peer = p.Addr.String()
		}
		_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", "250"))
		if req.(*tccv1.GetTransactionRequest).GetGid() == "plain-error" {
			return nil, context.Canceled
		}
		return nil, status.Error(codes.ResourceExhausted, "full")
	}
	local := NewLocal(ic)
	tccv1.RegisterCoordinatorServiceServer(local, &recorder{})
	c := tccv1.NewCoordinatorServiceClient(local)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer x")
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: httpAddr("192.0.2.1:5000")})
	var trailer metadata.MD
	_, err := c.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "g"}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("error %v", err)
	}
	if seen.method != tccv1.CoordinatorService_GetTransaction_FullMethodName || seen.incoming.Get("authorization")[0] != "Bearer x" || seen.outgoing || seen.peer != "192.0.2.1:5000" {
		t.Fatalf("the interceptor saw %+v", seen)
	}
	if got := trailer.Get("grpc-retry-pushback-ms"); len(got) != 1 || got[0] != "250" {
		t.Fatalf("trailer %v", trailer)
	}
	if _, err := c.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "plain-error"}); status.Code(err) != codes.Canceled {
		t.Fatalf("a context error: %v, want CANCELLED", err)
	}
	if err := local.Invoke(ctx, "/settle.tcc.v1.CoordinatorService/Nope", &tccv1.GetTransactionRequest{}, &tccv1.GetTransactionResponse{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("an unknown method: %v", err)
	}
}

// TestHTTPErrors: a status from the service is answered with its HTTP
// status and {"code","message"}; RESOURCE_EXHAUSTED carries Retry-After
// from the pushback trailer, rounded up to whole seconds.
func TestHTTPErrors(t *testing.T) {
	ic := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		switch req.(*tccv1.GetTransactionRequest).GetGid() {
		case "busy":
			_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", "1200"))
			return nil, status.Error(codes.ResourceExhausted, "at the limit")
		case "who":
			return nil, status.Error(codes.Unauthenticated, "no credentials")
		case "state":
			return nil, status.Error(codes.FailedPrecondition, "transaction is COMMITTED")
		}
		return nil, status.Error(codes.NotFound, "no transaction")
	}
	h := newTestHandler(t, &recorder{}, ic)
	for _, tc := range []struct {
		gid, code   string
		status      int
		header, val string
	}{
		{"busy", "RESOURCE_EXHAUSTED", 429, "Retry-After", "2"},
		{"who", "UNAUTHENTICATED", 401, "WWW-Authenticate", `Bearer realm="settle"`},
		{"state", "FAILED_PRECONDITION", 400, "", ""},
		{"missing", "NOT_FOUND", 404, "", ""},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/transactions/"+tc.gid, nil))
		var e struct{ Code, Message string }
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != tc.status || e.Code != tc.code || e.Message == "" {
			t.Errorf("%s: %d %s, want %d %s", tc.gid, w.Code, w.Body.Bytes(), tc.status, tc.code)
		}
		if tc.header != "" && w.Header().Get(tc.header) != tc.val {
			t.Errorf("%s: %s %q, want %q", tc.gid, tc.header, w.Header().Get(tc.header), tc.val)
		}
	}
}
