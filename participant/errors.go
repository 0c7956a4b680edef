package participant

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Refusals by the fence. Each is answered with FAILED_PRECONDITION, which
// the coordinator never retries (for Confirm and Cancel it flags the
// transaction for an operator, see tcc.ErrParticipantRefused).
var (
	// ErrTryAfterCancel: the branch was cancelled (or null-compensated)
	// before this Try arrived, or this Try repeats one that was applied
	// and then cancelled. Anti-hanging: the Try is refused and its handler
	// is not run.
	ErrTryAfterCancel = errors.New("participant: try after cancel")
	// ErrConfirmWithoutTry: Confirm for a branch with no Try on record.
	ErrConfirmWithoutTry = errors.New("participant: confirm without try")
	// ErrConflict: Confirm after Cancel, or Cancel after Confirm.
	ErrConflict = errors.New("participant: conflict")
	// ErrPayloadMismatch: a call repeated with a payload that differs from
	// the one on record (parameter snapshot).
	ErrPayloadMismatch = errors.New("participant: payload differs from the one on record")
)

// ErrRefused marks a business refusal returned by a handler: a Try that
// cannot reserve (insufficient funds, out of stock). Handlers return an
// error for which errors.Is(err, ErrRefused) holds, most simply one made by
// Refusal; it is answered with FAILED_PRECONDITION and the error's text.
var ErrRefused = errors.New("participant: refused")

// ErrInvalid marks a malformed request: bad ids, or a payload that
// Config.Validate rejected. It is answered with INVALID_ARGUMENT.
var ErrInvalid = errors.New("participant: invalid request")

// errRaced: the fence row kept changing under a call; answered with ABORTED
// so the caller retries.
var errRaced = errors.New("participant: fence row changed concurrently")

// refusal is a business refusal with its own text.
type refusal struct{ msg string }

func (r *refusal) Error() string        { return r.msg }
func (r *refusal) Is(target error) bool { return target == ErrRefused }

// Refusal returns a new business refusal with text msg, typically kept in
// a package-level variable and wrapped with details. The error's whole text
// is the status message the caller sees (and the initiator reports as the
// reason of its rollback), so write it for that reader:
//
//	var ErrInsufficientFunds = participant.Refusal("insufficient funds")
//	...
//	return fmt.Errorf("%w: %s has %d available", ErrInsufficientFunds, user, avail)
//
// errors.Is(err, ErrRefused) holds for it and for anything wrapping it.
func Refusal(msg string) error { return &refusal{msg: msg} }

// IsRefusal reports whether err is a definite "no" that the coordinator must
// not retry: a business refusal or one of the fence's refusals.
func IsRefusal(err error) bool {
	for _, target := range []error{ErrRefused, ErrTryAfterCancel, ErrConfirmWithoutTry, ErrConflict, ErrPayloadMismatch} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// toStatus is the one mapping from the package's errors (and handlers'
// errors) to gRPC statuses. Database errors are reported without their
// text, which the caller has already logged.
func toStatus(err error) error {
	var se interface{ GRPCStatus() *status.Status }
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, publicMessage(err))
	case IsRefusal(err):
		return status.Error(codes.FailedPrecondition, publicMessage(err))
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, errRaced):
		return status.Error(codes.Aborted, "concurrent update of the fence, retry")
	case errors.As(err, &se):
		// A handler chose its own status (e.g. INTERNAL for a broken
		// invariant).
		return se.GRPCStatus().Err()
	default:
		return status.Error(codes.Unavailable, "participant database unavailable, retry")
	}
}

// publicMessage drops this package's prefix from an error's text.
func publicMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "participant: ")
}
