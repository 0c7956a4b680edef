package client

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Stage names the step of Txn.Try that failed.
type Stage string

// The steps of Txn.Try.
const (
	// StageRegister: registering the branch with the coordinator.
	StageRegister Stage = "register"
	// StageTry: the participant's Try.
	StageTry Stage = "try"
)

// BranchError is the error of Txn.Try. It wraps the gRPC status error, so
// status.Code(err) gives the code of the failed call.
type BranchError struct {
	// GID and BranchID name the branch.
	GID, BranchID string
	// Stage is the step that failed.
	Stage Stage
	// Err is the underlying error, usually a gRPC status error.
	Err error
}

// Error returns "client: <stage> branch <branch id> of <gid>: <err>".
func (e *BranchError) Error() string {
	return fmt.Sprintf("client: %s branch %s of %s: %v", e.Stage, e.BranchID, e.GID, e.Err)
}

// Unwrap returns the underlying error.
func (e *BranchError) Unwrap() error { return e.Err }

// Refusal reports whether err (from Txn.Try, possibly wrapped further) is a
// participant's definite refusal of the Try — FAILED_PRECONDITION from the
// participant, such as insufficient funds — and returns the participant's
// own message. A refused Try reserved nothing; the transaction should be
// rolled back.
func Refusal(err error) (string, bool) {
	var be *BranchError
	if !errors.As(err, &be) || be.Stage != StageTry {
		return "", false
	}
	st, ok := status.FromError(be.Err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return "", false
	}
	return st.Message(), true
}
