package participant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/tcc"
)

// Defaults of Config.
const (
	// DefaultCheckBackAfter is how long a tried branch waits for Confirm or
	// Cancel before the check-back worker asks the coordinator.
	DefaultCheckBackAfter = 30 * time.Second
	// DefaultRetention is how long finished fence rows are kept.
	DefaultRetention = 7 * 24 * time.Hour
	// MinRetention is the shortest retention Config accepts. A fence row
	// must outlive every late duplicate that can still arrive for it: a
	// purged CANCELLED row would let a late Try through (a hanging
	// reservation), so the retention must exceed the longest transaction
	// timeout plus the transport deadlines and the coordinator's retry
	// horizon.
	MinRetention = time.Hour
)

// Request is one Try, Confirm or Cancel as a handler sees it. Confirm and
// Cancel carry the same gid, branch id and payload as the Try.
type Request struct {
	// GID is the global transaction id.
	GID string
	// BranchID is the branch id within the transaction.
	BranchID string
	// Payload is the opaque business payload registered with the
	// coordinator.
	Payload []byte
}

// Handler runs one phase's business change inside tx, the local database
// transaction that also holds the fence row. It must make every change
// through tx (not through another handle or connection) and must not commit
// or roll tx back. Returning an error rolls back the business change and
// the fence row together. The error decides the answer:
//
//   - errors.Is(err, ErrRefused) (see Refusal): FAILED_PRECONDITION with
//     the error's text; from Try this is a business refusal;
//   - an error carrying a gRPC status (status.Error): that status;
//   - anything else: UNAVAILABLE, which callers retry; the text is logged,
//     not sent.
//
// Deadlocks and lock wait timeouts from tx rerun the whole transaction, so
// a handler may run more than once for one call, but only one run commits.
//
// The fence protects only what happens in tx. A Try that also changes
// something outside this database (a cache, another service) must undo it
// in Cancel itself, and must cope with a Cancel that never saw its Try: if
// the Try's transaction rolled back, the Cancel is a null compensation and
// the Cancel handler is not run.
type Handler func(ctx context.Context, tx *gorm.DB, req Request) error

// Clock tells the time. It is satisfied by a test clock such as
// internal/clocktest.Clock.
type Clock interface {
	Now() time.Time
}

// Config configures a Participant.
type Config struct {
	// DB is the database that holds both the business tables and the fence
	// table (see Migrate). Required.
	DB *gorm.DB
	// Try reserves the resource. Required.
	Try Handler
	// Confirm makes a tried reservation real. Required.
	Confirm Handler
	// Cancel releases a tried reservation. It is not run for a null
	// compensation (Cancel with no Try on record). Required.
	Cancel Handler
	// CheckRequest, if set, checks a request before any database work; an
	// error is answered with INVALID_ARGUMENT and its text, and nothing is
	// recorded. Use it to reject malformed payloads, so that a garbage
	// Cancel is not recorded as a null compensation.
	CheckRequest func(Request) error
	// Table is the fence table. Default DefaultTable.
	Table string
	// CheckBackAfter is how long a tried branch may wait for Confirm or
	// Cancel before the check-back worker asks the coordinator about it.
	// Default DefaultCheckBackAfter.
	CheckBackAfter time.Duration
	// Retention is how long Purge keeps finished (CONFIRMED, CANCELLED)
	// fence rows after their last change. Default DefaultRetention; at
	// least MinRetention.
	Retention time.Duration
	// Logger receives one record per refused or failed call (debug for
	// successes). Default: discard.
	Logger *slog.Logger
	// Clock stamps fence rows and drives the check-back worker. Default:
	// the system clock.
	Clock Clock
}

// Validate reports whether c is usable, after defaults.
func (c Config) Validate() error {
	switch {
	case c.DB == nil:
		return errors.New("participant: Config.DB is required")
	case c.Try == nil || c.Confirm == nil || c.Cancel == nil:
		return errors.New("participant: Config.Try, Confirm and Cancel are required")
	case c.Table != "" && !tableName.MatchString(c.Table):
		return fmt.Errorf("participant: bad Config.Table %q", c.Table)
	case c.CheckBackAfter < 0:
		return errors.New("participant: Config.CheckBackAfter must not be negative")
	case c.Retention != 0 && c.Retention < MinRetention:
		return fmt.Errorf("participant: Config.Retention %v is under the minimum %v", c.Retention, MinRetention)
	}
	return nil
}

// systemClock is the default Clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Participant implements tccv1.ParticipantService from a Config's handlers
// and a fence table. It is safe for concurrent use, and any number of
// Participants (in one process or many) may serve the same database.
type Participant struct {
	tccv1.UnimplementedParticipantServiceServer

	db         *gorm.DB
	table      string
	sql        sqlText
	try        Handler
	confirm    Handler
	cancel     Handler
	check      func(Request) error
	checkAfter time.Duration
	retention  time.Duration
	log        *slog.Logger
	clock      Clock
}

var _ tccv1.ParticipantServiceServer = (*Participant)(nil)

// New returns a Participant for cfg. The fence table must exist (Migrate).
func New(cfg Config) (*Participant, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if cfg.CheckBackAfter == 0 {
		cfg.CheckBackAfter = DefaultCheckBackAfter
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	return &Participant{
		db:         cfg.DB,
		table:      cfg.Table,
		sql:        newSQLText(cfg.Table, cfg.DB.Dialector.Name()),
		try:        cfg.Try,
		confirm:    cfg.Confirm,
		cancel:     cfg.Cancel,
		check:      cfg.CheckRequest,
		checkAfter: cfg.CheckBackAfter,
		retention:  cfg.Retention,
		log:        cfg.Logger,
		clock:      cfg.Clock,
	}, nil
}

// now is the clock's time, in UTC.
func (p *Participant) now() time.Time { return p.clock.Now().UTC() }

// Phase names one of the three TCC calls.
type Phase string

// The phases.
const (
	PhaseTry     Phase = "try"
	PhaseConfirm Phase = "confirm"
	PhaseCancel  Phase = "cancel"
)

// Try implements ParticipantService.Try.
func (p *Participant) Try(ctx context.Context, req *tccv1.TryRequest) (*tccv1.TryResponse, error) {
	if err := p.serve(ctx, PhaseTry, Request{GID: req.GetGid(), BranchID: req.GetBranchId(), Payload: req.GetPayload()}); err != nil {
		return nil, err
	}
	return &tccv1.TryResponse{}, nil
}

// Confirm implements ParticipantService.Confirm.
func (p *Participant) Confirm(ctx context.Context, req *tccv1.ConfirmRequest) (*tccv1.ConfirmResponse, error) {
	if err := p.serve(ctx, PhaseConfirm, Request{GID: req.GetGid(), BranchID: req.GetBranchId(), Payload: req.GetPayload()}); err != nil {
		return nil, err
	}
	return &tccv1.ConfirmResponse{}, nil
}

// Cancel implements ParticipantService.Cancel.
func (p *Participant) Cancel(ctx context.Context, req *tccv1.CancelRequest) (*tccv1.CancelResponse, error) {
	if err := p.serve(ctx, PhaseCancel, Request{GID: req.GetGid(), BranchID: req.GetBranchId(), Payload: req.GetPayload()}); err != nil {
		return nil, err
	}
	return &tccv1.CancelResponse{}, nil
}

// serve runs one gRPC call and maps its error to a status.
func (p *Participant) serve(ctx context.Context, ph Phase, r Request) error {
	p.checkMetadata(ctx, ph, r)
	_, err := p.Apply(ctx, ph, r)
	return toStatus(err)
}

// Apply runs one call of phase ph through the fence and returns what it did
// ("tried", "confirmed", "cancelled", "null compensation" or "repeated").
// The gRPC methods and the check-back worker use it; it is exported for
// participants served over another transport. Errors are this package's
// sentinels, handler errors, or database errors.
func (p *Participant) Apply(ctx context.Context, ph Phase, r Request) (string, error) {
	log := p.log.With("op", string(ph), "gid", r.GID, "branch_id", r.BranchID)
	if err := p.validate(r); err != nil {
		log.InfoContext(ctx, "participant: request rejected", "err", err)
		return "", err
	}
	dig := tcc.Digest(r.Payload)
	var (
		outcome string
		err     error
	)
	switch ph {
	case PhaseTry:
		outcome, err = p.doTry(ctx, r, dig)
	case PhaseConfirm:
		outcome, err = p.doConfirm(ctx, r, dig)
	case PhaseCancel:
		outcome, err = p.doCancel(ctx, r, dig)
	default:
		return "", fmt.Errorf("%w: unknown phase %q", ErrInvalid, ph)
	}
	switch {
	case err == nil:
		log.DebugContext(ctx, "participant: call done", "outcome", outcome)
	case IsRefusal(err):
		log.InfoContext(ctx, "participant: call refused", "err", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		log.WarnContext(ctx, "participant: call abandoned", "err", err)
	default:
		log.ErrorContext(ctx, "participant: call failed", "err", err)
	}
	return outcome, err
}

// checkMetadata logs when the optional metadata disagrees with the request.
// The request fields are authoritative.
func (p *Participant) checkMetadata(ctx context.Context, ph Phase, r Request) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return
	}
	if v := md.Get(client.MetadataGID); len(v) > 0 && v[0] != r.GID {
		p.log.WarnContext(ctx, "participant: metadata gid differs from request", "op", string(ph), "gid", r.GID, "metadata_gid", v[0])
	}
	if v := md.Get(client.MetadataBranchID); len(v) > 0 && v[0] != r.BranchID {
		p.log.WarnContext(ctx, "participant: metadata branch id differs from request", "op", string(ph), "gid", r.GID, "branch_id", r.BranchID, "metadata_branch_id", v[0])
	}
}

// validate applies the protocol's id rules (the coordinator's own
// validation, so both sides accept the same ids) and Config.CheckRequest.
func (p *Participant) validate(r Request) error {
	for _, err := range []error{tcc.ValidateGID(r.GID), tcc.ValidateBranchID(r.BranchID)} {
		if err != nil {
			// Keep this package's prefix only: "invalid request: gid is empty".
			return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), tcc.ErrInvalid.Error()+": "))
		}
	}
	if p.check != nil {
		if err := p.check(r); err != nil {
			if errors.Is(err, ErrInvalid) {
				return err
			}
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return nil
}

// doTry inserts the TRIED fence row and runs the Try handler, in one local
// transaction. A duplicate fence row answers for the earlier call.
// model: fence_try
func (p *Participant) doTry(ctx context.Context, r Request, dig string) (string, error) {
	for range maxRaces {
		err := inTx(ctx, p.db, func(tx *gorm.DB) error {
			if err := p.insertFence(tx, r, StateTried, dig, p.now()); err != nil {
				return err
			}
			return p.try(ctx, tx, r)
		})
		if !errors.Is(err, errFenceExists) {
			return "tried", err
		}
		f, found, err := p.readFence(ctx, r)
		switch {
		case err != nil:
			return "", err
		case !found:
			continue // the row we collided with was rolled back
		case f.state == StateCancelled && f.tried:
			// A repeat of a Try that was applied and has since been
			// cancelled: its reservation is gone and must not come back,
			// so the repeat is refused like any Try after Cancel.
			return "", fmt.Errorf("%w: branch %s of %s was tried and then cancelled; a repeated Try cannot reserve again", ErrTryAfterCancel, r.BranchID, r.GID)
		case f.state == StateCancelled:
			return "", fmt.Errorf("%w: branch %s of %s was cancelled first", ErrTryAfterCancel, r.BranchID, r.GID)
		case f.digest != dig:
			return "", fmt.Errorf("%w: try of branch %s of %s", ErrPayloadMismatch, r.BranchID, r.GID)
		default: // TRIED or CONFIRMED with this payload: the first Try succeeded
			return "repeated", nil
		}
	}
	return "", errRaced
}

// doConfirm moves the fence row TRIED -> CONFIRMED and runs the Confirm
// handler, in one local transaction.
// model: fence_confirm
func (p *Participant) doConfirm(ctx context.Context, r Request, dig string) (string, error) {
	for range maxRaces {
		err := inTx(ctx, p.db, func(tx *gorm.DB) error {
			if err := p.moveFence(tx, r, StateConfirmed, dig, p.now()); err != nil {
				return err
			}
			return p.confirm(ctx, tx, r)
		})
		if !errors.Is(err, errNotTried) {
			return "confirmed", err
		}
		f, found, err := p.readFence(ctx, r)
		switch {
		case err != nil:
			return "", err
		case !found:
			return "", fmt.Errorf("%w: branch %s of %s", ErrConfirmWithoutTry, r.BranchID, r.GID)
		case f.state == StateCancelled:
			return "", fmt.Errorf("%w: confirm after cancel of branch %s of %s", ErrConflict, r.BranchID, r.GID)
		case f.digest != dig:
			return "", fmt.Errorf("%w: confirm of branch %s of %s", ErrPayloadMismatch, r.BranchID, r.GID)
		case f.state == StateConfirmed:
			return "repeated", nil
		}
		// Still TRIED with this payload: a concurrent call held the row and
		// rolled back. Start over.
	}
	return "", errRaced
}

// doCancel first inserts the CANCELLED fence row (null compensation: no
// handler). If a row exists, it moves TRIED -> CANCELLED and runs the
// Cancel handler, in one local transaction. Insert first, never
// select-then-insert: under MySQL's REPEATABLE READ a SELECT ... FOR UPDATE
// of a missing row takes a gap lock, and two such Cancels then deadlock on
// their INSERTs.
// model: fence_cancel
func (p *Participant) doCancel(ctx context.Context, r Request, dig string) (string, error) {
	for range maxRaces {
		err := inTx(ctx, p.db, func(tx *gorm.DB) error {
			return p.insertFence(tx, r, StateCancelled, dig, p.now())
		})
		if err == nil {
			return "null compensation", nil
		}
		if !errors.Is(err, errFenceExists) {
			return "", err
		}
		err = inTx(ctx, p.db, func(tx *gorm.DB) error {
			if err := p.moveFence(tx, r, StateCancelled, dig, p.now()); err != nil {
				return err
			}
			return p.cancel(ctx, tx, r)
		})
		if !errors.Is(err, errNotTried) {
			return "cancelled", err
		}
		f, found, err := p.readFence(ctx, r)
		switch {
		case err != nil:
			return "", err
		case !found:
			continue // purged in between: start over
		case f.state == StateConfirmed:
			return "", fmt.Errorf("%w: cancel after confirm of branch %s of %s", ErrConflict, r.BranchID, r.GID)
		case f.digest != dig:
			return "", fmt.Errorf("%w: cancel of branch %s of %s", ErrPayloadMismatch, r.BranchID, r.GID)
		case f.state == StateCancelled:
			return "repeated", nil
		}
	}
	return "", errRaced
}
