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
// If fn returns an error or panics, or the insert fails (a duplicate key:
// the decider answered abort first, ErrDecidedAbort), the local
// transaction is rolled back, the global transaction is rolled back (on a
// context detached from ctx, bounded by the rollback timeout), and the
// error is returned wrapped (fn's error is seen by errors.Is; a panic is
// re-raised after the rollbacks). If the local COMMIT itself fails, its
// outcome is settled as the decider would (insert-if-absent abort, then
// read the row) and followed.
//
// If a branch was not tried successfully it rolls back and returns
// ErrNotTried without running fn; without a decider it returns
// ErrNoDecider and does nothing. After the local commit it never rolls
// back: a failed Commit returns ErrCommittedLocally (wrapping the Commit
// error), and the transaction still commits.
func (t *Txn) CommitLocal(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) (txn *tccv1.Transaction, err error) {
	if t.decider == "" {
		return nil, fmt.Errorf("client: commit local %s: %w", t.gid, ErrNoDecider)
	}
	wait := t.c.cfg.runWait
	if bad := t.untried(); len(bad) > 0 {
		return t.rollbackAfter(ctx, db, fmt.Errorf("%w: %s", ErrNotTried, strings.Join(bad, ", ")), false)
	}
	if _, err := decisionDialectOf(db); err != nil {
		return t.rollbackAfter(ctx, db, err, false)
	}
	local := db.WithContext(ctx).Begin()
	if local.Error != nil {
		return t.rollbackAfter(ctx, db, fmt.Errorf("begin the local transaction: %w", local.Error), false)
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
		_, _ = t.rollbackDetached(ctx, reason, wait)
		if value != nil {
			panic(value)
		}
	}()
	if err := fn(local); err != nil {
		ended = true
		local.Rollback()
		return t.rollbackAfter(ctx, db, fmt.Errorf("local business change: %w", err), true)
	}
	if err := local.Exec(insertDecision, t.gid, OutcomeCommit, time.Now().UnixMicro()).Error; err != nil {
		ended = true
		local.Rollback()
		return t.rollbackAfter(ctx, db, fmt.Errorf("insert the commit row into %s: %w", DecisionTable, err), true)
	}
	ended = true
	if err := local.Commit().Error; err != nil {
		// The COMMIT's outcome is unknown (the connection may have broken
		// after the server committed). Settle it as the decider would.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.c.cfg.rollbackTimeout)
		o, derr := decideLocally(dctx, db, t.gid)
		cancel()
		switch {
		case derr != nil:
			// The decider settles it when the coordinator asks.
			return nil, fmt.Errorf("client: commit local %s: local commit outcome unknown (%w), and the decision table could not be read (%w); the coordinator will ask the decider", t.gid, err, derr)
		case o != OutcomeCommit:
			return t.rollbackAfter(ctx, db, fmt.Errorf("commit the local transaction: %w", err), false)
		}
	}
	txn, err = t.Commit(ctx, wait)
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

// rollbackAfter rolls the global transaction back after cause kept the
// local commit from happening, and returns cause wrapped. checkDecided
// looks in the decision table whether the decider had answered abort (a
// failed insert of the commit row), to say so (ErrDecidedAbort).
func (t *Txn) rollbackAfter(ctx context.Context, db *gorm.DB, cause error, checkDecided bool) (*tccv1.Transaction, error) {
	if checkDecided {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.c.cfg.rollbackTimeout)
		o, err := readDecision(dctx, db, t.gid)
		cancel()
		if err == nil && o == OutcomeAbort {
			cause = fmt.Errorf("%w: %w", ErrDecidedAbort, cause)
		}
	}
	txn, err := t.rollbackDetached(ctx, truncate(cause.Error(), maxReason), t.c.cfg.runWait)
	if err != nil {
		return txn, fmt.Errorf("client: commit local %s: %w (rollback failed: %w; nothing was committed locally, so the decider answers abort)", t.gid, cause, err)
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
