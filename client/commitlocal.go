package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// Errors of Txn.CommitLocal, matched with errors.Is.
var (
	// ErrNoDecider: CommitLocal of a transaction begun without a decider
	// (WithDecider, BeginOptions.Decider). Nothing was done; without a
	// decider the coordinator would abort a transaction whose Commit got
	// lost after the local commit, so CommitLocal refuses.
	ErrNoDecider = errors.New("client: the transaction has no decider")
	// ErrNotTried: a branch was not tried successfully (its last Try
	// failed, or a branch registered with Begin was never tried). The
	// transaction was rolled back; nothing was committed locally.
	ErrNotTried = errors.New("client: not every branch was tried successfully")
	// ErrDecidedAbort: the decider had already answered abort for the
	// transaction (the coordinator asked it, at the deadline, before the
	// local transaction inserted its commit row), so the local
	// transaction was rolled back, and so was the global one.
	ErrDecidedAbort = errors.New("client: the decider already answered abort")
	// ErrCommittedLocally: the local transaction committed, so the
	// transaction will commit, but the Commit call failed. The coordinator
	// learns the outcome from the decider at the transaction's deadline
	// and confirms the branches then; the caller need not do anything (a
	// repeated Commit only makes it sooner).
	ErrCommittedLocally = errors.New("client: committed locally; the coordinator will learn the outcome from the decider")
)

// CommitLocal commits the transaction through the initiator's own
// database: after every Try succeeded, it runs fn (the business change,
// e.g. marking the order paid) and inserts (gid, commit) into the decision
// table (DecisionTable, created by EnsureDecisionTable) in ONE local
// transaction on db, and only when that committed asks the coordinator to
// Commit (with the client's WithRunWait). The local commit is the
// decision: if the Commit call is lost, the coordinator asks the
// transaction's decider (a Decider over the same table) at the deadline
// and commits then.
//
// The SDK never rolls the global transaction back without first making
// the abort durable in the decision table (the decider's own
// insert-if-absent of (gid, abort)), so no later local commit of the gid
// can succeed; and it never rolls back when the table says commit. So:
//
//   - fn returns an error or panics, or a branch was not tried
//     successfully (ErrNotTried; fn is not run): the local transaction is
//     rolled back, (gid, abort) recorded, the global transaction rolled
//     back (on a context detached from ctx, bounded by the rollback
//     timeout), and the error returned wrapped (errors.Is sees fn's
//     error); a panic is re-raised after that;
//   - the decider answered abort first (the coordinator asked it at the
//     deadline): the commit row's insert fails on the key, or the row is
//     found before fn runs; the local transaction is rolled back and
//     ErrDecidedAbort returned;
//   - the table already says commit (a repeated CommitLocal, e.g. after
//     ErrCommittedLocally): fn is not run again, only Commit is repeated;
//   - the local COMMIT fails with an unknown outcome: it is settled the
//     decider's way (insert-if-absent abort, read the row) and followed;
//   - the decision table cannot be read or written: nothing is rolled
//     back; the coordinator asks the decider at the deadline.
//
// After the local commit a failed Commit returns ErrCommittedLocally
// (wrapping the Commit error): the transaction still commits. Without a
// decider CommitLocal returns ErrNoDecider and does nothing.
//
// model: commit_local
func (t *Txn) CommitLocal(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) (*tccv1.Transaction, error) {
	if t.decider == "" {
		return nil, fmt.Errorf("client: commit local %s: %w", t.gid, ErrNoDecider)
	}
	if _, err := decisionDialectOf(db); err != nil {
		// No decision table can exist there, so nothing can have
		// committed locally: roll back directly.
		return t.rolledBack(ctx, err)
	}
	// What the table already says.
	switch o, err := readDecision(ctx, db, t.gid); {
	case err != nil:
		return nil, fmt.Errorf("client: commit local %s: %w (nothing done; the coordinator will ask the decider at the deadline)", t.gid, err)
	case o == OutcomeCommit:
		return t.commitAfterLocal(ctx)
	case o == OutcomeAbort:
		return t.abortLocal(ctx, db, ErrDecidedAbort)
	}
	if bad := t.untried(); len(bad) > 0 {
		return t.abortLocal(ctx, db, fmt.Errorf("%w: %s", ErrNotTried, strings.Join(bad, ", ")))
	}
	local := db.WithContext(ctx).Begin()
	if local.Error != nil {
		return t.abortLocal(ctx, db, fmt.Errorf("begin the local transaction: %w", local.Error))
	}
	ended := false
	defer func() {
		if ended {
			return
		}
		// fn panicked (or called runtime.Goexit): nothing is committed.
		local.Rollback()
		value := recover()
		reason := "local transaction exited without returning"
		if value != nil {
			reason = fmt.Sprintf("panic in the local transaction: %v", value)
		}
		_, _ = t.abortLocal(ctx, db, errors.New(reason))
		if value != nil {
			panic(value)
		}
	}()
	if err := fn(local); err != nil {
		ended = true
		local.Rollback()
		return t.abortLocal(ctx, db, fmt.Errorf("local business change: %w", err))
	}
	if err := local.Exec(insertDecision, t.gid, OutcomeCommit, time.Now().UnixMicro()).Error; err != nil {
		ended = true
		local.Rollback()
		return t.abortLocal(ctx, db, fmt.Errorf("insert the commit row into %s: %w", DecisionTable, err))
	}
	ended = true
	if err := local.Commit().Error; err != nil {
		// The COMMIT's outcome is unknown (the connection may have broken
		// after the server committed): abortLocal settles it the
		// decider's way and commits if the row says so.
		return t.abortLocal(ctx, db, fmt.Errorf("commit the local transaction: %w", err))
	}
	return t.commitAfterLocal(ctx)
}

// commitAfterLocal asks the coordinator to Commit a transaction whose
// commit row is in the decision table.
func (t *Txn) commitAfterLocal(ctx context.Context) (*tccv1.Transaction, error) {
	txn, err := t.Commit(ctx, t.c.cfg.runWait)
	if err == nil {
		return txn, nil
	}
	if status.Code(err) == codes.FailedPrecondition {
		// Decided abort although the decision row says commit: someone
		// rolled the transaction back behind the decider (a Rollback of
		// the same gid, an operator). An operator must reconcile.
		return nil, fmt.Errorf("client: commit local %s: CONFLICT: committed locally but the coordinator decided otherwise: %w", t.gid, err)
	}
	return nil, fmt.Errorf("client: commit local %s: %w: %w", t.gid, ErrCommittedLocally, err)
}

// abortLocal ends a CommitLocal whose local transaction did not commit (or
// whose COMMIT's outcome is unknown) because of cause: it records
// (gid, abort) the decider's way, so that no later local commit of the gid
// can succeed, and rolls the global transaction back; if the table says
// commit instead, it commits. If the decider had answered abort before,
// the error says so (ErrDecidedAbort).
func (t *Txn) abortLocal(ctx context.Context, db *gorm.DB, cause error) (*tccv1.Transaction, error) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.c.cfg.rollbackTimeout)
	prior, _ := readDecision(dctx, db, t.gid)
	o, err := decideLocally(dctx, db, t.gid)
	cancel()
	switch {
	case err != nil:
		return nil, fmt.Errorf("client: commit local %s: %w (the decision table could not be written: %w; not rolled back: the coordinator will ask the decider at the deadline)", t.gid, cause, err)
	case o == OutcomeCommit:
		return t.commitAfterLocal(ctx)
	}
	if prior == OutcomeAbort && !errors.Is(cause, ErrDecidedAbort) {
		cause = fmt.Errorf("%w: %w", ErrDecidedAbort, cause)
	}
	return t.rolledBack(ctx, cause)
}

// rolledBack rolls the global transaction back because of cause and
// returns cause wrapped.
func (t *Txn) rolledBack(ctx context.Context, cause error) (*tccv1.Transaction, error) {
	txn, err := t.rollbackDetached(ctx, truncate(cause.Error(), maxReason), t.c.cfg.runWait)
	if err != nil {
		return txn, fmt.Errorf("client: commit local %s: %w (rollback failed: %w; the decider answers abort when asked)", t.gid, cause, err)
	}
	return txn, fmt.Errorf("client: commit local %s: %w (rolled back)", t.gid, cause)
}

// untried returns the branches whose last Try failed and those registered
// with Begin that were never tried, sorted.
func (t *Txn) untried() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var bad []string
	for id, err := range t.tried {
		if err != nil {
			bad = append(bad, id+" (its Try failed)")
		}
	}
	for id := range t.registered {
		if _, ok := t.tried[id]; !ok {
			bad = append(bad, id+" (never tried)")
		}
	}
	slices.Sort(bad)
	return bad
}
