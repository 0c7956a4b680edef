package participant_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/httpparticipant"
)

// TestHTTPHandler: the SDK's participant served over HTTP answers each
// call as the protocol's HTTP contract says, seen through the coordinator's
// own HTTP client: done 200, repeats 200, refusals and anti-hanging 409,
// an invalid payload 400; wrong paths, methods and bodies are refused.
func TestHTTPHandler(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		mux := http.NewServeMux()
		mux.Handle("/tcc/", e.p.HTTPHandler())
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		hc := httpparticipant.NewHTTPClient(nil, 4, 4, time.Minute)
		t.Cleanup(hc.CloseIdleConnections)
		c := httpparticipant.New(hc, srv.URL+"/tcc")
		ctx := ctxT(t)
		want := func(what string, err error, code codes.Code) {
			t.Helper()
			if status.Code(err) != code {
				t.Errorf("%s: %v, want %v", what, err, code)
			}
		}
		try := func(gid, payload string) error {
			_, err := c.Try(ctx, &tccv1.TryRequest{Gid: gid, BranchId: "b", Payload: []byte(payload)})
			return err
		}
		want("try", try("h1", "3"), codes.OK)
		want("repeated try", try("h1", "3"), codes.OK)
		want("try with another payload", try("h1", "4"), codes.FailedPrecondition)
		_, err := c.Confirm(ctx, &tccv1.ConfirmRequest{Gid: "h1", BranchId: "b", Payload: []byte("3")})
		want("confirm", err, codes.OK)
		if s := e.stock(t); s != (stock{97, 0, 3}) {
			t.Fatalf("after Try and Confirm over HTTP: stock %+v", s)
		}
		_, err = c.Cancel(ctx, &tccv1.CancelRequest{Gid: "h1", BranchId: "b", Payload: []byte("3")})
		want("cancel after confirm", err, codes.FailedPrecondition)
		want("try out of stock", try("h2", "1000"), codes.FailedPrecondition)
		want("try with an invalid payload", try("h3", "-1"), codes.InvalidArgument)
		_, err = c.Cancel(ctx, &tccv1.CancelRequest{Gid: "h4", BranchId: "b", Payload: []byte("2")})
		want("cancel before try", err, codes.OK)
		want("try after cancel", try("h4", "2"), codes.FailedPrecondition)
		if s := e.stock(t); s != (stock{97, 0, 3}) {
			t.Fatalf("after the refusals: stock %+v", s)
		}

		for _, tc := range []struct {
			method, path, body string
			headers            map[string]string
			status             int
		}{
			{"POST", "/tcc/frobnicate", `{}`, nil, 404},
			{"GET", "/tcc/try", ``, nil, 405},
			{"POST", "/tcc/try", `{"gid":`, nil, 400},
			{"POST", "/tcc/try", `{"gid":"g","branchId":"b","extra":1}`, nil, 400},
			{"POST", "/tcc/try", `{"gid":"g","branchId":"b","payload":"not base64!"}`, nil, 400},
			{"POST", "/tcc/try", `{"gid":"g","branchId":"b","payload":"Mw=="}`, map[string]string{"Settle-Gid": "other"}, 400},
			{"POST", "/tcc/try", `{"gid":"g 1","branchId":"b","payload":"Mw=="}`, nil, 400},
		} {
			req, err := http.NewRequestWithContext(context.Background(), tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("%s %s %s: %d, want %d", tc.method, tc.path, tc.body, resp.StatusCode, tc.status)
			}
		}
	})
}
