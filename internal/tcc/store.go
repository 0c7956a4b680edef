package tcc

import (
	"context"
	"errors"
	"time"
)

// Store errors. Implementations return these (possibly wrapped) so that the
// domain never looks at driver errors.
var (
	// ErrDuplicate: an insert hit an existing primary key.
	ErrDuplicate = errors.New("tcc: duplicate key")
	// ErrConflict: a compare-and-set matched no row because someone else
	// changed the record first (another decision, a newer version, a lost
	// lease). It is a normal outcome, never a crash.
	ErrConflict = errors.New("tcc: concurrent update")
	// ErrTooManyBranches: AddBranch found the transaction at its branch limit.
	ErrTooManyBranches = errors.New("tcc: too many branches")
)

// Store persists transaction_record, branch_record and each transaction's
// history (transaction_event; see history.go). Every method is one
// short database transaction (or one statement); none is ever held open
// across a network call. Every state change is a compare-and-set on the
// expected state and/or version; zero matched rows is reported as an error
// value (ErrConflict, a *StateError, ErrNotFound), never a panic.
//
// All times are the coordinator's clock, passed in by the caller; stores do
// not read the database's clock. See the package documentation.
//
// The contract is tested against every implementation by
// internal/tcc/storetest.
type Store interface {
	// InsertTransaction inserts a new record with its Branches (none, or
	// the branches registered at Begin), all in one database transaction,
	// with its first events: EventBegun and an EventBranchRegistered per
	// branch, or, for a tombstone, an EventDecided by check-back.
	// It returns ErrDuplicate if the gid exists (nothing is written).
	InsertTransaction(ctx context.Context, tx *Transaction) error

	// GetTransaction returns the record with its branches ordered by
	// branch id, or ErrNotFound.
	GetTransaction(ctx context.Context, gid string) (*Transaction, error)

	// AddBranch inserts a branch if, in the same database transaction, the
	// record is TRYING and has fewer than p.MaxBranches branches, with its
	// EventBranchRegistered. Errors:
	// ErrNotFound; a *StateError if the record is not TRYING;
	// ErrTooManyBranches; ErrDuplicate if the branch id exists (nothing is
	// written in each case).
	AddBranch(ctx context.Context, p AddBranchParams) error

	// RegisterBranch is AddBranch that also returns the record with its
	// branches as it is after the call, read in the same database
	// transaction when the branch was added (the hot path of registration
	// needs both, and this saves a round trip and a second snapshot). On
	// ErrDuplicate, a *StateError or ErrTooManyBranches it returns the
	// record as it is (nothing written) together with the error; on
	// ErrNotFound and other errors a nil record.
	RegisterBranch(ctx context.Context, p AddBranchParams) (*Transaction, error)

	// Decide is the one decision: a compare-and-set TRYING -> COMMITTING or
	// ABORTING that also takes the lease for p.Owner until p.LeaseUntil,
	// and appends an EventDecided (p.Cause) only if it decided.
	// It returns the record as it is after the call, with its branches, and
	// won=true if this call made the decision. If the record was already
	// decided it returns it unchanged with won=false; the caller compares
	// the decided outcome. ErrNotFound if there is no record.
	Decide(ctx context.Context, p DecideParams) (tx *Transaction, won bool, err error)

	// RecordRound stores the result of one delivery round by the lease
	// holder, in one database transaction: each branch in p.Done moves
	// REGISTERED -> its final state (attempts+1); each in p.Failed gets
	// attempts+1 and its error; then, if p.Finish, the record moves to the
	// final state, else it is rescheduled at p.NextAttemptAt with the lease
	// released. The record update requires version p.Version (the version
	// the lease was taken at); if it does not match, the branch facts are
	// still stored and ErrConflict is returned.
	//
	// History, in the same database transaction: an EventAttempt per
	// p.Calls and an EventConflict per p.Conflicts (facts, stored like the
	// branch facts), then, only if the record's compare-and-set matched,
	// EventFinished (p.Finish) or EventNeedsAttention (p.Attention not
	// empty). Attempts of a branch numbered above p.KeepAttempts and up
	// to its newest minus p.KeepAttempts are deleted (0: keep all).
	RecordRound(ctx context.Context, p RoundParams) error

	// Postpone reschedules a TRYING record whose decider could not answer
	// (decider.go): a compare-and-set on state TRYING and p.Version that
	// sets next_attempt_at to p.NextAttemptAt and last_error to
	// p.LastError, adds one to attempts and the version, and sets
	// needs_attention if p.NeedsAttention (never clears it); with
	// p.Attention not empty, an EventNeedsAttention in the same database
	// transaction. ErrConflict if the record is not TRYING at p.Version or
	// does not exist (nothing is written).
	Postpone(ctx context.Context, p PostponeParams) error

	// Claim takes the lease on a transaction that is due: a compare-and-set
	// on p.Version that also requires next_attempt_at <= p.Now. It returns
	// the record with its branches after the claim, or ErrConflict if it
	// was not due or changed.
	Claim(ctx context.Context, p ClaimParams) (*Transaction, error)

	// RetryNow makes a decided, unfinished transaction due now, or a
	// TRYING one with a decider whose deadline is at or before p.Now (its
	// decider is then asked at once), and appends an EventRetryNow with
	// p.Actor in the same database transaction. It returns ErrNotFound, a
	// *StateError if the record is in neither case, or ErrConflict if an
	// instance holds its lease (it is being driven at this moment); then
	// nothing is written.
	RetryNow(ctx context.Context, p RetryParams) (*Transaction, error)

	// ResolveBranch records an operator's resolution of a REGISTERED branch
	// of a decided transaction: the branch moves to p.State with
	// p.Reason stored, and the transaction becomes due now so the loop can
	// finish it. Errors: ErrNotFound (transaction or branch), a *StateError
	// if the transaction is TRYING or final or the branch is not
	// REGISTERED. An EventResolved (p.Actor, p.Reason) is appended with
	// the change, in the same database transaction.
	ResolveBranch(ctx context.Context, p ResolveParams) (*Transaction, error)

	// ListTransactions returns records (without branches, with their
	// BranchCount) ordered by gid, after p.After, filtered as p says, at
	// most p.Limit.
	ListTransactions(ctx context.Context, p ListParams) ([]*Transaction, error)

	// History returns the events of gid in the order they were written
	// (none, not an error, for an unknown gid).
	History(ctx context.Context, gid string) ([]Event, error)

	// Overview returns, per state with records (in LifecycleOrder), how
	// many there are, how many are flagged as needing attention and the
	// oldest one's creation time; and, per bucket of p.Bucket from
	// p.Since (p.Buckets of them), the DECIDED events and the ATTEMPT
	// events that did not succeed, by their time, as History would return
	// them (attempts the bound dropped are not counted). See overview.go.
	Overview(ctx context.Context, p OverviewParams) (*Overview, error)

	// Purge deletes up to p.Limit final transactions (their branches and
	// history with them)
	// that became final before p.Before, tombstones only if they were
	// created before p.TombstonesBefore. It returns how many it deleted.
	Purge(ctx context.Context, p PurgeParams) (int, error)

	// ListDue returns up to limit gids with next_attempt_at <= now, among
	// TRYING, COMMITTING and ABORTING records, oldest due first, with the
	// versions read. It uses the (state, next_attempt_at) index.
	ListDue(ctx context.Context, now time.Time, limit int) ([]DueRef, error)

	// Close releases the store's resources.
	Close() error
}

// AddBranchParams are the arguments of Store.AddBranch.
type AddBranchParams struct {
	Branch      Branch
	MaxBranches int
	Now         time.Time
}

// DecideParams are the arguments of Store.Decide.
type DecideParams struct {
	GID     string
	Outcome Outcome
	// Owner is the coordinator instance taking the lease to drive the
	// branches; LeaseUntil is when the lease expires (and the transaction
	// becomes due for the recovery loop if not finished by then).
	Owner      string
	LeaseUntil time.Time
	// AbortReason is stored when Outcome is Abort.
	AbortReason string
	// Cause is what made the decision (for the history).
	Cause Cause
	Now   time.Time
}

// BranchResult is the outcome of one Confirm/Cancel call.
type BranchResult struct {
	BranchID string
	// Err is empty when the participant acknowledged.
	Err string
}

// RoundParams are the arguments of Store.RecordRound.
type RoundParams struct {
	GID     string
	Outcome Outcome
	// Version is the record's version when the lease was taken.
	Version int64
	Done    []string
	Failed  []BranchResult
	// Conflicts are branches whose participant refused: they get the
	// conflict flag and are not retried.
	Conflicts []BranchResult
	// NeedsAttention sets the transaction's needs-attention flag (it is
	// never cleared by a round).
	NeedsAttention bool
	// Finish moves the record to its final state; otherwise it is
	// rescheduled at NextAttemptAt with LastError.
	Finish        bool
	NextAttemptAt time.Time
	LastError     string
	Now           time.Time
	// Calls are the round's Confirm/Cancel calls for the history, made by
	// Instance; KeepAttempts is the history's bound N (the first and last
	// N attempts of each branch are kept; 0 keeps all).
	Calls        []CallRecord
	Instance     string
	KeepAttempts int
	// Attention, when not empty, says why this round flags the
	// transaction as needing attention for the first time (an
	// EventNeedsAttention).
	Attention string
}

// PostponeParams are the arguments of Store.Postpone.
type PostponeParams struct {
	GID string
	// Version is the version the record was read at.
	Version       int64
	NextAttemptAt time.Time
	LastError     string
	// NeedsAttention sets the needs-attention flag; Attention, when not
	// empty, says why this call flags it for the first time (an
	// EventNeedsAttention, by Instance).
	NeedsAttention bool
	Attention      string
	Instance       string
	Now            time.Time
}

// ClaimParams are the arguments of Store.Claim.
type ClaimParams struct {
	GID        string
	Version    int64
	Owner      string
	LeaseUntil time.Time
	Now        time.Time
}

// DueRef identifies a due transaction.
type DueRef struct {
	GID     string
	State   State
	Version int64
}

// ResolveParams are the arguments of Store.ResolveBranch.
type ResolveParams struct {
	GID      string
	BranchID string
	// State is BranchConfirmed or BranchCancelled.
	State  BranchState
	Reason string
	// Actor is who resolved it (for the history).
	Actor string
	Now   time.Time
}

// RetryParams are the arguments of Store.RetryNow.
type RetryParams struct {
	GID string
	// Actor is who asked (for the history).
	Actor string
	Now   time.Time
}

// ListParams filter Store.ListTransactions. Zero fields do not filter.
type ListParams struct {
	State          State
	NeedsAttention bool
	// CreatedBefore keeps records created before this time, CreatedAfter
	// those created at or after it.
	CreatedBefore time.Time
	CreatedAfter  time.Time
	// GIDPrefix keeps records whose gid starts with it.
	GIDPrefix string
	// Participant keeps records with a branch whose participant target is
	// exactly this.
	Participant string
	// LabelKey keeps records with this label; with LabelValue set (or
	// LabelValueSet, for an empty value), only with that value.
	LabelKey      string
	LabelValue    string
	LabelValueSet bool
	// After is the last gid of the previous page.
	After string
	Limit int
}

// PurgeParams are the arguments of Store.Purge.
type PurgeParams struct {
	Before           time.Time
	TombstonesBefore time.Time
	Limit            int
}
