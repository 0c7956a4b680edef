package tcc

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test them with errors.Is; the gRPC edge maps each
// to one status code.
var (
	// ErrInvalid: the request is malformed (ids, timeout, sizes, limits).
	ErrInvalid = errors.New("tcc: invalid argument")
	// ErrNotFound: no transaction with that gid.
	ErrNotFound = errors.New("tcc: transaction not found")
	// ErrState: the transaction is not in a state that allows the request.
	ErrState = errors.New("tcc: wrong transaction state")
	// ErrExists: an id was reused with different parameters.
	ErrExists = errors.New("tcc: already exists with different parameters")
	// ErrNotAllowed: the participant target is not on the allow-list.
	ErrNotAllowed = errors.New("tcc: participant not allowed")
	// ErrUnavailable: the store could not be reached; the request may be
	// retried as is.
	ErrUnavailable = errors.New("tcc: store unavailable")
	// ErrClosed: the coordinator is shutting down.
	ErrClosed = errors.New("tcc: coordinator shutting down")
)

// StateError reports a request refused because of the transaction's state.
// It matches ErrState with errors.Is.
type StateError struct {
	GID    string
	Actual State
	// Op is the refused operation ("commit", "rollback", "register branch",
	// "begin").
	Op string
	// Detail optionally explains, e.g. "presumed aborted by check-back".
	Detail string
}

func (e *StateError) Error() string {
	msg := fmt.Sprintf("%s %s: transaction is %s", e.Op, e.GID, e.Actual)
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrState) true.
func (e *StateError) Is(target error) bool { return target == ErrState }

// invalidf returns an error wrapping ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
