package httpparticipant_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/httpparticipant"
)

// TestClassify is the answer-class table of docs/participant-protocol.md.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		status     int
		body       string
		code       codes.Code
		unexpected bool
		msg        string
	}{
		{200, "", codes.OK, false, ""},
		{204, "", codes.OK, false, ""},
		{299, "whatever", codes.OK, false, ""},
		{409, `{"code":"FAILED_PRECONDITION","message":"insufficient funds"}`, codes.FailedPrecondition, false, "insufficient funds"},
		{409, "try after cancel", codes.FailedPrecondition, false, "try after cancel"},
		{400, `{"message":"amount missing"}`, codes.InvalidArgument, false, "amount missing"},
		{422, "", codes.InvalidArgument, false, "Unprocessable Entity"},
		{429, "", codes.ResourceExhausted, false, "Too Many Requests"},
		{500, "boom", codes.Unavailable, false, "boom"},
		{502, "", codes.Unavailable, false, "Bad Gateway"},
		{503, "", codes.Unavailable, false, ""},
		{504, "", codes.DeadlineExceeded, false, ""},
		{302, "", codes.Unknown, true, "Found"},
		{301, "", codes.Unknown, true, ""},
		{404, "no route", codes.Unknown, true, "no route"},
		{405, "", codes.Unknown, true, ""},
		{401, "", codes.Unknown, true, ""},
		{100, "", codes.Unknown, true, ""},
		{600, "", codes.Unknown, true, "(no message)"},
	} {
		err := httpparticipant.Classify(tc.status, []byte(tc.body))
		if got := status.Code(err); got != tc.code {
			t.Errorf("Classify(%d, %q): code %v, want %v (%v)", tc.status, tc.body, got, tc.code, err)
			continue
		}
		if err == nil {
			continue
		}
		var ae *httpparticipant.AnswerError
		if !errors.As(err, &ae) || ae.HTTPStatus != tc.status || ae.Unexpected != tc.unexpected {
			t.Errorf("Classify(%d): %#v, want HTTPStatus %d, Unexpected %v", tc.status, err, tc.status, tc.unexpected)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Classify(%d, %q) = %q, want it to say %q", tc.status, tc.body, err, tc.msg)
		}
	}
}

// FuzzClassify: any status and body give nil for exactly the 2xx
// statuses and otherwise an AnswerError whose code is one of the
// contract's, with a bounded, printable message. The seeds run as a unit
// test.
func FuzzClassify(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{200, ""}, {409, `{"message":"no"}`}, {400, "bad"}, {422, "{"}, {429, ""}, {500, "\x00\xff"},
		{302, "<html>"}, {404, strings.Repeat("x", 2000)}, {-1, ""}, {0, `{"message":""}`},
		{409, `{"message":"` + strings.Repeat("é", 600) + `"}`}, {503, "line1\nline2\r\t"},
	} {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, st int, body []byte) {
		err := httpparticipant.Classify(st, body)
		if (err == nil) != (st >= 200 && st <= 299) {
			t.Fatalf("Classify(%d) = %v", st, err)
		}
		if err == nil {
			return
		}
		var ae *httpparticipant.AnswerError
		if !errors.As(err, &ae) {
			t.Fatalf("Classify(%d): %T, not an AnswerError", st, err)
		}
		switch ae.Code {
		case codes.FailedPrecondition, codes.InvalidArgument, codes.ResourceExhausted, codes.Unavailable, codes.DeadlineExceeded:
			if ae.Unexpected {
				t.Fatalf("Classify(%d): %v flagged unexpected", st, ae.Code)
			}
		case codes.Unknown:
			if !ae.Unexpected {
				t.Fatalf("Classify(%d): Unknown without Unexpected", st)
			}
		default:
			t.Fatalf("Classify(%d): code %v outside the contract", st, ae.Code)
		}
		if len(ae.Message) == 0 || len(ae.Message) > 520 || !utf8.ValidString(ae.Message) {
			t.Fatalf("Classify(%d): message of %d bytes, valid UTF-8 %v", st, len(ae.Message), utf8.ValidString(ae.Message))
		}
		for _, r := range ae.Message {
			if r < ' ' || r == 0x7f {
				t.Fatalf("Classify(%d): control character in %q", st, ae.Message)
			}
		}
	})
}

// TestClient: the wire form of a call (path, method, content type, ids in
// headers, protojson body) and each answer class as the SDK sees it.
func TestClient(t *testing.T) {
	var mu sync.Mutex // guards the three below, shared with the handler
	answer := map[string]int{}
	var got *http.Request
	var gotBody []byte
	last := func() (*http.Request, []byte) {
		mu.Lock()
		defer mu.Unlock()
		return got, gotBody
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/base/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req tccv1.TryRequest
		if err := protojson.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		got, gotBody = r.Clone(context.Background()), body
		st := answer[req.GetGid()]
		mu.Unlock()
		switch st {
		case 0:
			w.WriteHeader(200)
		case 302:
			http.Redirect(w, r, "/elsewhere", 302)
		case -1:
			<-r.Context().Done() // answers after the caller's deadline
		default:
			http.Error(w, "answer "+req.GetGid(), st)
		}
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { t.Error("a redirect was followed") })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	hc := httpparticipant.NewHTTPClient(nil, 4, 4, time.Minute)
	c := httpparticipant.New(hc, srv.URL+"/base/")

	ctx := context.Background()
	if _, err := c.Confirm(ctx, &tccv1.ConfirmRequest{Gid: "g-1", BranchId: "b1", Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	req, reqBody := last()
	if req.Method != "POST" || req.URL.Path != "/base/confirm" || req.Header.Get("Content-Type") != "application/json" ||
		req.Header.Get("Settle-Gid") != "g-1" || req.Header.Get("Settle-Branch-Id") != "b1" {
		t.Errorf("request %s %s headers %v", req.Method, req.URL.Path, req.Header)
	}
	var sent tccv1.ConfirmRequest
	if err := protojson.Unmarshal(reqBody, &sent); err != nil || sent.GetGid() != "g-1" || sent.GetBranchId() != "b1" || string(sent.GetPayload()) != "{}" ||
		!strings.Contains(string(reqBody), "branchId") {
		t.Errorf("body %s (%v), want the protojson ConfirmRequest", reqBody, err)
	}

	for gid, want := range map[string]codes.Code{"c409": codes.FailedPrecondition, "c400": codes.InvalidArgument, "c422": codes.InvalidArgument,
		"c429": codes.ResourceExhausted, "c500": codes.Unavailable, "c302": codes.Unknown, "c404": codes.Unknown, "slow": codes.DeadlineExceeded} {
		st := map[string]int{"c409": 409, "c400": 400, "c422": 422, "c429": 429, "c500": 500, "c302": 302, "c404": 404, "slow": -1}[gid]
		mu.Lock()
		answer[gid] = st
		mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := c.Try(cctx, &tccv1.TryRequest{Gid: gid, BranchId: "b"})
		cancel()
		if status.Code(err) != want {
			t.Errorf("%s: %v, want %v", gid, err, want)
		}
		if got, _ := last(); got.URL.Path != "/base/try" {
			t.Errorf("%s: path %s", gid, got.URL.Path)
		}
	}

	// No listener: unavailable, an unknown outcome.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = httpparticipant.New(hc, "http://"+addr).Cancel(ctx, &tccv1.CancelRequest{Gid: "g", BranchId: "b"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("closed port: %v, want Unavailable", err)
	}
}

func TestIsTarget(t *testing.T) {
	for target, want := range map[string]bool{"http://a:1": true, "HTTPS://a": true, "127.0.0.1:80": false, "dns:///a:1": false, "httpx://a": false} {
		if got := httpparticipant.IsTarget(target); got != want {
			t.Errorf("IsTarget(%q) = %v", target, got)
		}
	}
}

// TestHTTPStatusInverse: what Handler answers for a code, Classify reads
// back as the same code; CodeName is the canonical name.
func TestHTTPStatusInverse(t *testing.T) {
	for _, c := range []codes.Code{codes.OK, codes.FailedPrecondition, codes.InvalidArgument, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Unavailable} {
		if got := status.Code(httpparticipant.Classify(httpparticipant.HTTPStatus(c), nil)); got != c {
			t.Errorf("Classify(HTTPStatus(%v)) = %v", c, got)
		}
	}
	if got := status.Code(httpparticipant.Classify(httpparticipant.HTTPStatus(codes.Internal), nil)); got != codes.Unavailable {
		t.Errorf("Internal: read back as %v, want Unavailable (an unknown outcome)", got)
	}
	for c, want := range map[codes.Code]string{codes.OK: "OK", codes.FailedPrecondition: "FAILED_PRECONDITION", codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED"} {
		if got := httpparticipant.CodeName(c); got != want {
			t.Errorf("CodeName(%v) = %q, want %q", c, got, want)
		}
	}
}
