package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// HTTPHandler serves, for participants and tools that do not speak gRPC:
//
//	GET  /v1/transactions/{gid}                     GetTransaction as JSON (read-only)
//	POST /v1/checkback  {"gid":"G","branchId":"B"}  CheckBack as JSON
//	GET  /metrics                                   Prometheus metrics
//	GET  /healthz                                   200 while serving
//
// Check-back is POST only: it may record a decision (the abort of a
// transaction past its deadline, the tombstone of an unknown gid), which a
// GET must not do. GET /v1/checkback answers 405 and says so.
//
// JSON uses the protobuf JSON mapping of settle.tcc.v1 (camelCase fields,
// enum names as strings). Errors are {"code": "NOT_FOUND", "message": ...}
// with the HTTP status grpc-gateway uses for that code.
//
// guard wraps each endpoint's handler with the authorization of the gRPC
// method it serves (or an "http:..." name for HTTP-only endpoints); nil
// serves them unguarded.
func HTTPHandler(svc *Coordinator, reg *prometheus.Registry, log *slog.Logger, guard func(method string, h http.Handler) http.Handler) http.Handler {
	if guard == nil {
		guard = func(_ string, h http.Handler) http.Handler { return h }
	}
	mux := http.NewServeMux()
	h := &httpAPI{svc: svc, log: log}
	mux.Handle("GET /v1/transactions/{gid}", guard(tccv1.CoordinatorService_GetTransaction_FullMethodName, http.HandlerFunc(h.getTransaction)))
	mux.HandleFunc("GET /v1/checkback", checkBackGet)
	mux.Handle("POST /v1/checkback", guard(tccv1.CoordinatorService_CheckBack_FullMethodName, http.HandlerFunc(h.checkBack)))
	mux.Handle("GET /healthz", guard("http:healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })))
	if reg != nil {
		mux.Handle("GET /metrics", guard("http:metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	}
	return mux
}

type httpAPI struct {
	svc *Coordinator
	log *slog.Logger
}

func (h *httpAPI) getTransaction(w http.ResponseWriter, r *http.Request) {
	resp, err := h.svc.GetTransaction(r.Context(), &tccv1.GetTransactionRequest{Gid: r.PathValue("gid")})
	h.reply(w, resp, err)
}

func (h *httpAPI) checkBack(w http.ResponseWriter, r *http.Request) {
	req := &tccv1.CheckBackRequest{}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		h.reply(w, nil, status.Errorf(codes.InvalidArgument, "body is not JSON: %v", err))
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		h.reply(w, nil, status.Error(codes.InvalidArgument, "body has data after its JSON object"))
		return
	}
	if err := protojson.Unmarshal(raw, req); err != nil {
		h.reply(w, nil, status.Errorf(codes.InvalidArgument, "body is not a CheckBackRequest: %v", err))
		return
	}
	resp, err := h.svc.CheckBack(r.Context(), req)
	h.reply(w, resp, err)
}

// checkBackGet refuses a GET of the check-back: it would record decisions.
func checkBackGet(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusMethodNotAllowed)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": "METHOD_NOT_ALLOWED",
		"message": `check-back may record a decision, so it is POST only: POST /v1/checkback {"gid":"G","branchId":"B"}; GET /v1/transactions/{gid} reads a transaction without changing it`})
}

func (h *httpAPI) reply(w http.ResponseWriter, m proto.Message, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		st := status.Convert(err)
		w.WriteHeader(httpStatus(st.Code()))
		_ = json.NewEncoder(w).Encode(map[string]string{"code": codeName(st.Code()), "message": st.Message()})
		return
	}
	b, err := protojson.MarshalOptions{EmitUnpopulated: false}.Marshal(m)
	if err != nil {
		h.log.Error("encode json", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(b)
}

func codeName(c codes.Code) string {
	names := map[codes.Code]string{
		codes.InvalidArgument: "INVALID_ARGUMENT", codes.NotFound: "NOT_FOUND", codes.FailedPrecondition: "FAILED_PRECONDITION",
		codes.AlreadyExists: "ALREADY_EXISTS", codes.PermissionDenied: "PERMISSION_DENIED", codes.Unavailable: "UNAVAILABLE",
		codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.Canceled: "CANCELLED", codes.Aborted: "ABORTED", codes.Internal: "INTERNAL",
	}
	if n, ok := names[c]; ok {
		return n
	}
	return c.String()
}

// httpStatus is grpc-gateway's mapping of gRPC codes to HTTP statuses.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Canceled:
		return 499
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.Unimplemented:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}
