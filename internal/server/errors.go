package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/internal/tcc"
)

// toStatus is the one place where domain errors become gRPC statuses.
// Client errors carry the domain message (it names the gid and the actual
// state); storage and internal errors get a fixed public text and are
// logged with their detail, so no SQL or driver text reaches a caller.
func toStatus(log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, tcc.ErrInvalid), errors.Is(err, tcc.ErrTooManyBranches):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, tcc.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, tcc.ErrState):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, tcc.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, tcc.ErrNotAllowed):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, tcc.ErrClosed):
		return status.Error(codes.Unavailable, "coordinator is shutting down; retry on another instance")
	case errors.Is(err, tcc.ErrConflict):
		return status.Error(codes.Aborted, "concurrent update of the same transaction; retry")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded before the coordinator finished; the call may or may not have been applied, retry it")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "call cancelled; the call may or may not have been applied, retry it")
	case errors.Is(err, tcc.ErrUnavailable):
		log.Error("storage unavailable", "method", method, "err", err)
		return status.Error(codes.Unavailable, "coordinator storage unavailable; retry")
	}
	log.Error("internal error", "method", method, "err", err)
	return status.Error(codes.Internal, "internal error; see coordinator logs")
}

// invalid returns an error that toStatus maps to INVALID_ARGUMENT.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{tcc.ErrInvalid}, args...)...)
}
