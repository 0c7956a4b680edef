package httpparticipant

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// The decider's HTTP contract (docs/initiators.md): POST <base>/decide with
// the protojson DecideRequest ({"gid": "..."}) as the body and the
// Settle-Gid header, answered 200 with {"outcome": "COMMIT"} or
// {"outcome": "ABORT"}. The enum's names (OUTCOME_COMMIT, OUTCOME_ABORT)
// are accepted too, in any case. Every other answer is classified as a
// participant's is (Classify) and means the outcome is unknown; a 2xx
// without a valid outcome is outside the contract.

// DeciderClient calls one HTTP decider. It implements
// tccv1.DeciderServiceClient; the grpc.CallOptions are ignored.
type DeciderClient struct {
	hc   *http.Client
	base string
}

var _ tccv1.DeciderServiceClient = (*DeciderClient)(nil)

// NewDecider returns a DeciderClient for the decider at base (an http:// or
// https:// URL; a trailing slash is dropped) using hc, which must not
// follow redirects (see NewHTTPClient).
func NewDecider(hc *http.Client, base string) *DeciderClient {
	return &DeciderClient{hc: hc, base: strings.TrimRight(base, "/")}
}

// Decide implements tccv1.DeciderServiceClient.
func (c *DeciderClient) Decide(ctx context.Context, in *tccv1.DecideRequest, _ ...grpc.CallOption) (*tccv1.DecideResponse, error) {
	body, err := post(ctx, c.hc, c.base, "decide", in.GetGid(), "", in)
	if err != nil {
		return nil, err
	}
	var answer struct {
		Outcome string `json:"outcome"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, &AnswerError{HTTPStatus: http.StatusOK, Code: codes.Unknown, Unexpected: true,
			Message: "the decider's answer is not {\"outcome\": \"COMMIT\" | \"ABORT\"}"}
	}
	o, ok := ParseOutcome(answer.Outcome)
	if !ok {
		return nil, &AnswerError{HTTPStatus: http.StatusOK, Code: codes.Unknown, Unexpected: true,
			Message: fmt.Sprintf("the decider answered outcome %.40q, neither COMMIT nor ABORT", answer.Outcome)}
	}
	return &tccv1.DecideResponse{Outcome: o}, nil
}

// ParseOutcome reads a decider's outcome: COMMIT or ABORT, or the enum
// names OUTCOME_COMMIT and OUTCOME_ABORT, in any case.
func ParseOutcome(s string) (tccv1.Outcome, bool) {
	switch strings.TrimPrefix(strings.ToUpper(s), "OUTCOME_") {
	case "COMMIT":
		return tccv1.Outcome_OUTCOME_COMMIT, true
	case "ABORT":
		return tccv1.Outcome_OUTCOME_ABORT, true
	}
	return tccv1.Outcome_OUTCOME_UNSPECIFIED, false
}

// DeciderHandler serves a DeciderService over HTTP: POST .../decide (the
// last element of the path; mount it under the base URL's path) with the
// protojson DecideRequest as the body, answered 200 {"outcome": "COMMIT"}
// or {"outcome": "ABORT"}, or for an error the status of HTTPStatus with
// {"code": ..., "message": ...}. A body that is not the request, or whose
// Settle-Gid header differs from it, is 400; another method is 405,
// another path 404.
func DeciderHandler(srv tccv1.DeciderServiceServer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if path.Base(r.URL.Path) != "decide" {
			writeError(w, http.StatusNotFound, "NOT_FOUND", "no such decider call; POST <base>/decide")
			return
		}
		req := &tccv1.DecideRequest{}
		if !readRequest(w, r, "decider", "decide", 64<<10, req) {
			return
		}
		resp, err := srv.Decide(r.Context(), req)
		if err != nil {
			st := status.Convert(err)
			writeError(w, HTTPStatus(st.Code()), CodeName(st.Code()), st.Message())
			return
		}
		outcome := ""
		switch resp.GetOutcome() {
		case tccv1.Outcome_OUTCOME_COMMIT:
			outcome = "COMMIT"
		case tccv1.Outcome_OUTCOME_ABORT:
			outcome = "ABORT"
		default:
			writeError(w, http.StatusInternalServerError, "INTERNAL", "the decider gave no outcome")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"outcome":"`+outcome+`"}`)
	})
}
