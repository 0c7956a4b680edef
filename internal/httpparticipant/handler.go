package httpparticipant

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// MaxRequestBytes bounds a request body the Handler reads: a 4 MiB
// payload in base64, plus room for the ids.
const MaxRequestBytes = 4<<20*4/3 + 64<<10

// HTTPStatus is the HTTP status a participant answers for a gRPC code: the
// inverse of Classify (OK 200, FAILED_PRECONDITION 409, INVALID_ARGUMENT
// 400, RESOURCE_EXHAUSTED 429, DEADLINE_EXCEEDED 504, UNAVAILABLE 503,
// anything else 500: all three an unknown outcome).
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.FailedPrecondition:
		return http.StatusConflict
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// CodeName is a code's canonical name, "FAILED_PRECONDITION".
func CodeName(c codes.Code) string {
	if c == codes.OK {
		return "OK"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// Handler serves a ParticipantService over HTTP: POST .../try, .../confirm
// and .../cancel (the last element of the path; mount it under the base
// URL's path) with the protojson request as the body, answered with the
// status of HTTPStatus and, for an error, {"code": ..., "message": ...}.
// A body that is not the request (malformed JSON, unknown fields, over
// MaxRequestBytes) or whose Settle-Gid / Settle-Branch-Id headers differ
// from it is 400; another method is 405, another path 404.
func Handler(srv tccv1.ParticipantServiceServer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := path.Base(r.URL.Path)
		var req interface {
			proto.Message
			GetGid() string
			GetBranchId() string
		}
		switch op {
		case "try":
			req = &tccv1.TryRequest{}
		case "confirm":
			req = &tccv1.ConfirmRequest{}
		case "cancel":
			req = &tccv1.CancelRequest{}
		default:
			writeError(w, http.StatusNotFound, "NOT_FOUND", "no such participant call; POST <base>/try, <base>/confirm or <base>/cancel")
			return
		}
		if !readRequest(w, r, "participant", op, MaxRequestBytes, req) {
			return
		}
		if b := r.Header.Get(HeaderBranchID); b != "" && b != req.GetBranchId() {
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "the Settle-Branch-Id header differs from the body's branchId")
			return
		}
		var err error
		switch m := req.(type) {
		case *tccv1.TryRequest:
			_, err = srv.Try(r.Context(), m)
		case *tccv1.ConfirmRequest:
			_, err = srv.Confirm(r.Context(), m)
		case *tccv1.CancelRequest:
			_, err = srv.Cancel(r.Context(), m)
		}
		st := status.Convert(err)
		if st.Code() == codes.OK {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "{}")
			return
		}
		writeError(w, HTTPStatus(st.Code()), CodeName(st.Code()), st.Message())
	})
}

// readRequest reads a POST's protojson body, at most limit bytes, into req
// and checks the Settle-Gid header against it. On any failure it writes
// the error answer (405 for another method, 400 for the body or the
// header) and returns false. kind and op name the call in the messages.
func readRequest(w http.ResponseWriter, r *http.Request, kind, op string, limit int64, req interface {
	proto.Message
	GetGid() string
}) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", kind+" calls are POST")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		msg := "reading the body failed"
		if errors.As(err, &tooBig) {
			msg = "the body is over the limit"
		}
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", msg)
		return false
	}
	if err := protojson.Unmarshal(body, req); err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "the body is not a "+op+" request: "+err.Error())
		return false
	}
	if g := r.Header.Get(HeaderGID); g != "" && g != req.GetGid() {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "the Settle-Gid header differs from the body's gid")
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, httpStatus int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code, msg})
}
