package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// Metadata keys the Settle SDK and coordinator send along with the request
// fields. They are only logged; the request fields are authoritative.
const (
	metadataGID      = "settle-gid"
	metadataBranchID = "settle-branch-id"
)

// Request validation errors (INVALID_ARGUMENT).
var (
	// ErrBadID: a gid or branch id is empty, too long or has characters
	// outside [A-Za-z0-9._:-].
	ErrBadID = errors.New("demo: bad id")
	// ErrNotServed: the payload names a resource this server does not serve.
	ErrNotServed = errors.New("demo: resource not served here")
)

// Server is a TCC participant serving the demo resources from one database.
// It implements tccv1.ParticipantServiceServer and is safe for concurrent
// use.
type Server struct {
	tccv1.UnimplementedParticipantServiceServer

	db     *gorm.DB
	log    *slog.Logger
	served map[Resource]bool
	now    func() time.Time
}

// NewServer returns a participant serving resources (all of them when none
// is given) from db, whose tables Migrate has created. A nil logger
// discards logs.
func NewServer(db *gorm.DB, logger *slog.Logger, resources ...Resource) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(resources) == 0 {
		resources = AllResources()
	}
	served := make(map[Resource]bool, len(resources))
	for _, r := range resources {
		served[r] = true
	}
	return &Server{
		db:     db,
		log:    logger,
		served: served,
		now:    func() time.Time { return time.Now().UTC() },
	}
}

// call is one validated request.
type call struct {
	key     fenceKey
	payload Payload
	digest  string
}

// Try reserves the resource named by the payload.
func (s *Server) Try(ctx context.Context, req *tccv1.TryRequest) (*tccv1.TryResponse, error) {
	if err := s.handle(ctx, opTry, req.GetGid(), req.GetBranchId(), req.GetPayload(), s.try); err != nil {
		return nil, err
	}
	return &tccv1.TryResponse{}, nil
}

// Confirm makes a tried reservation real.
func (s *Server) Confirm(ctx context.Context, req *tccv1.ConfirmRequest) (*tccv1.ConfirmResponse, error) {
	if err := s.handle(ctx, opConfirm, req.GetGid(), req.GetBranchId(), req.GetPayload(), s.confirm); err != nil {
		return nil, err
	}
	return &tccv1.ConfirmResponse{}, nil
}

// Cancel releases a tried reservation, or records a null compensation.
func (s *Server) Cancel(ctx context.Context, req *tccv1.CancelRequest) (*tccv1.CancelResponse, error) {
	if err := s.handle(ctx, opCancel, req.GetGid(), req.GetBranchId(), req.GetPayload(), s.cancel); err != nil {
		return nil, err
	}
	return &tccv1.CancelResponse{}, nil
}

// handle validates a request, runs fn, logs the outcome and maps its error
// to a gRPC status.
func (s *Server) handle(ctx context.Context, o op, gid, branchID string, payload []byte, fn func(context.Context, call) (string, error)) error {
	log := s.log.With("op", string(o), "gid", gid, "branch_id", branchID)
	s.checkMetadata(ctx, log, gid, branchID)
	c, err := s.validate(gid, branchID, payload)
	if err != nil {
		log.InfoContext(ctx, "demo: request rejected", "err", err)
		return toStatus(err)
	}
	log = log.With("resource", string(c.key.resource))
	outcome, err := fn(ctx, c)
	switch {
	case err == nil:
		log.DebugContext(ctx, "demo: call done", "outcome", outcome)
		return nil
	case isRefusal(err):
		log.InfoContext(ctx, "demo: call refused", "err", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		log.WarnContext(ctx, "demo: call abandoned", "err", err)
	default:
		log.ErrorContext(ctx, "demo: call failed", "err", err)
	}
	return toStatus(err)
}

// checkMetadata logs when the optional metadata disagrees with the request.
func (s *Server) checkMetadata(ctx context.Context, log *slog.Logger, gid, branchID string) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return
	}
	if v := md.Get(metadataGID); len(v) > 0 && v[0] != gid {
		log.WarnContext(ctx, "demo: metadata gid differs from request", "metadata_gid", v[0])
	}
	if v := md.Get(metadataBranchID); len(v) > 0 && v[0] != branchID {
		log.WarnContext(ctx, "demo: metadata branch id differs from request", "metadata_branch_id", v[0])
	}
}

func (s *Server) validate(gid, branchID string, payload []byte) (call, error) {
	if err := checkID("gid", gid, 128); err != nil {
		return call{}, err
	}
	if err := checkID("branch id", branchID, 64); err != nil {
		return call{}, err
	}
	p, err := ParsePayload(payload)
	if err != nil {
		return call{}, err
	}
	if !s.served[p.Resource] {
		return call{}, fmt.Errorf("%w: %s", ErrNotServed, p.Resource)
	}
	return call{
		key:     fenceKey{resource: p.Resource, gid: gid, branchID: branchID},
		payload: p,
		digest:  digest(payload),
	}, nil
}

// checkID applies the protocol's id rules: 1..max bytes of [A-Za-z0-9._:-].
func checkID(what, id string, max int) error {
	if id == "" || len(id) > max {
		return fmt.Errorf("%w: %s must be 1..%d bytes", ErrBadID, what, max)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return fmt.Errorf("%w: %s has a character outside [A-Za-z0-9._:-]", ErrBadID, what)
		}
	}
	return nil
}

// try inserts the TRIED fence row and reserves, in one local transaction.
// A duplicate fence row answers for the earlier call.
func (s *Server) try(ctx context.Context, c call) (string, error) {
	for range maxRaces {
		err := inTx(ctx, s.db, func(tx *gorm.DB) error {
			if err := insertFence(tx, c.key, StateTried, c.digest, s.now()); err != nil {
				return err
			}
			return apply(tx, opTry, c.payload)
		})
		if !errors.Is(err, errFenceExists) {
			return "tried", err
		}
		f, found, err := readFence(ctx, s.db, c.key)
		switch {
		case err != nil:
			return "", err
		case !found:
			continue // the row we collided with was rolled back
		case f.state == StateCancelled:
			return "", fmt.Errorf("%w: branch %s of %s was cancelled first", ErrTryAfterCancel, c.key.branchID, c.key.gid)
		case f.digest != c.digest:
			return "", fmt.Errorf("%w: try of branch %s of %s", ErrPayloadMismatch, c.key.branchID, c.key.gid)
		default: // TRIED or CONFIRMED with this payload: the first Try succeeded
			return "repeated", nil
		}
	}
	return "", errRaced
}

// confirm moves the fence row TRIED -> CONFIRMED and applies the
// reservation, in one local transaction.
func (s *Server) confirm(ctx context.Context, c call) (string, error) {
	for range maxRaces {
		err := inTx(ctx, s.db, func(tx *gorm.DB) error {
			if err := moveFence(tx, c.key, StateConfirmed, c.digest, s.now()); err != nil {
				return err
			}
			return apply(tx, opConfirm, c.payload)
		})
		if !errors.Is(err, errNotTried) {
			return "confirmed", err
		}
		f, found, err := readFence(ctx, s.db, c.key)
		switch {
		case err != nil:
			return "", err
		case !found:
			return "", fmt.Errorf("%w: branch %s of %s", ErrConfirmWithoutTry, c.key.branchID, c.key.gid)
		case f.state == StateCancelled:
			return "", fmt.Errorf("%w: confirm after cancel of branch %s of %s", ErrConflict, c.key.branchID, c.key.gid)
		case f.digest != c.digest:
			return "", fmt.Errorf("%w: confirm of branch %s of %s", ErrPayloadMismatch, c.key.branchID, c.key.gid)
		case f.state == StateConfirmed:
			return "repeated", nil
		}
		// Still TRIED with this payload: a concurrent call held the row.
	}
	return "", errRaced
}

// cancel first tries to insert the CANCELLED fence row (null compensation,
// no business effect). If a row exists, it moves TRIED -> CANCELLED and
// releases the reservation, in one local transaction.
func (s *Server) cancel(ctx context.Context, c call) (string, error) {
	for range maxRaces {
		err := inTx(ctx, s.db, func(tx *gorm.DB) error {
			return insertFence(tx, c.key, StateCancelled, c.digest, s.now())
		})
		if err == nil {
			return "null compensation", nil
		}
		if !errors.Is(err, errFenceExists) {
			return "", err
		}
		err = inTx(ctx, s.db, func(tx *gorm.DB) error {
			if err := moveFence(tx, c.key, StateCancelled, c.digest, s.now()); err != nil {
				return err
			}
			return apply(tx, opCancel, c.payload)
		})
		if !errors.Is(err, errNotTried) {
			return "cancelled", err
		}
		f, found, err := readFence(ctx, s.db, c.key)
		switch {
		case err != nil:
			return "", err
		case !found:
			continue // cannot happen: fence rows are never deleted
		case f.state == StateConfirmed:
			return "", fmt.Errorf("%w: cancel after confirm of branch %s of %s", ErrConflict, c.key.branchID, c.key.gid)
		case f.digest != c.digest:
			return "", fmt.Errorf("%w: cancel of branch %s of %s", ErrPayloadMismatch, c.key.branchID, c.key.gid)
		case f.state == StateCancelled:
			return "repeated", nil
		}
	}
	return "", errRaced
}

// isRefusal reports whether err is a definite, business-level "no".
func isRefusal(err error) bool {
	for _, target := range []error{
		ErrInsufficientFunds, ErrInsufficientStock, ErrUnknownAccount, ErrUnknownSKU,
		ErrTryAfterCancel, ErrConfirmWithoutTry, ErrConflict, ErrPayloadMismatch,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// toStatus is the one mapping from the package's errors to gRPC statuses.
// Database errors are reported without their text.
func toStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrBadPayload), errors.Is(err, ErrBadID), errors.Is(err, ErrNotServed):
		return status.Error(codes.InvalidArgument, publicMessage(err))
	case isRefusal(err):
		return status.Error(codes.FailedPrecondition, publicMessage(err))
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, errBroken):
		return status.Error(codes.Internal, "internal error: reservation missing")
	case errors.Is(err, errRaced):
		return status.Error(codes.Aborted, "concurrent update, retry")
	default:
		return status.Error(codes.Unavailable, "participant database unavailable")
	}
}

// publicMessage drops the package prefix from an error of this package.
func publicMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "demo: ")
}
