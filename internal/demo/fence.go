package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

// Fence states, as stored in demo_fence.state.
const (
	// StateTried: Try succeeded and holds a reservation.
	StateTried = "TRIED"
	// StateConfirmed: Confirm applied the reservation.
	StateConfirmed = "CONFIRMED"
	// StateCancelled: Cancel released the reservation, or recorded a null
	// compensation when no Try had been seen.
	StateCancelled = "CANCELLED"
)

// fenceKey identifies one branch of one resource.
type fenceKey struct {
	resource Resource
	gid      string
	branchID string
}

// fenceRow is what demo_fence holds for a key.
type fenceRow struct {
	state  string
	digest string
}

// Control-flow errors of the fence; none leaves the package.
var (
	// errFenceExists: the INSERT of the fence row hit an existing row.
	errFenceExists = errors.New("demo: fence row exists")
	// errNotTried: the compare-and-set from TRIED matched no row.
	errNotTried = errors.New("demo: fence row not in TRIED state with this payload")
	// errRaced: the fence row changed between two statements; start over.
	errRaced = errors.New("demo: fence row changed concurrently")
)

const (
	// maxTxAttempts bounds the retries of a local transaction that hit a
	// deadlock, a lock wait timeout or a busy database. Many concurrent
	// duplicates of a Try that is refused can deadlock repeatedly on
	// InnoDB: when the first one rolls back its fence row, every waiter
	// holds a shared lock on the key and needs an exclusive one.
	maxTxAttempts = 12
	// maxRaces bounds how often an operation starts over after its fence
	// row changed under it.
	maxRaces = 4
	// firstBackoff is the first pause before retrying a local transaction;
	// it doubles up to maxBackoff.
	firstBackoff = 5 * time.Millisecond
	maxBackoff   = 200 * time.Millisecond
)

// insertFence creates the fence row in state. An existing row yields
// errFenceExists (the caller's transaction must then roll back).
func insertFence(tx *gorm.DB, k fenceKey, state, dig string, now time.Time) error {
	err := tx.Exec(
		"INSERT INTO demo_fence (resource, gid, branch_id, state, payload_digest, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		string(k.resource), k.gid, k.branchID, state, dig, now, now,
	).Error
	if isDuplicate(err) {
		return errFenceExists
	}
	return err
}

// moveFence is the compare-and-set TRIED -> to for a row with digest dig. No
// matching row yields errNotTried.
func moveFence(tx *gorm.DB, k fenceKey, to, dig string, now time.Time) error {
	res := tx.Exec(
		"UPDATE demo_fence SET state = ?, updated_at = ? WHERE resource = ? AND gid = ? AND branch_id = ? AND state = ? AND payload_digest = ?",
		to, now, string(k.resource), k.gid, k.branchID, StateTried, dig,
	)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return errNotTried
	}
	return nil
}

// readFence reads a committed fence row outside any transaction.
func readFence(ctx context.Context, db *gorm.DB, k fenceKey) (fenceRow, bool, error) {
	var f fenceRow
	err := db.WithContext(ctx).Raw(
		"SELECT state, payload_digest FROM demo_fence WHERE resource = ? AND gid = ? AND branch_id = ?",
		string(k.resource), k.gid, k.branchID,
	).Row().Scan(&f.state, &f.digest)
	if errors.Is(err, sql.ErrNoRows) {
		return fenceRow{}, false, nil
	}
	if err != nil {
		return fenceRow{}, false, fmt.Errorf("read fence: %w", err)
	}
	return f, true, nil
}

// inTx runs fn in a local transaction, retrying it from the start when the
// database reports a deadlock, a lock wait timeout or a busy file.
func inTx(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) error {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		err := db.WithContext(ctx).Transaction(fn)
		if err == nil || !isRetryable(err) || attempt >= maxTxAttempts {
			return err
		}
		// Full jitter keeps colliding transactions from colliding again.
		t := time.NewTimer(rand.N(backoff) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// sqliteError is implemented by the SQLite driver's errors.
type sqliteError interface {
	error
	Code() int
}

// Driver error codes that change what the fence does.
const (
	sqliteBusy              = 5    // SQLITE_BUSY
	sqliteLocked            = 6    // SQLITE_LOCKED
	sqliteConstraintPrimary = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
	sqliteConstraintUnique  = 2067 // SQLITE_CONSTRAINT_UNIQUE
	sqlitePrimaryCodeMask   = 0xff // extended code -> primary code

	mysqlDuplicateEntry  = 1062 // ER_DUP_ENTRY
	mysqlLockWaitTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT
	mysqlDeadlock        = 1213 // ER_LOCK_DEADLOCK
)

// isDuplicate reports whether err is a primary or unique key violation.
func isDuplicate(err error) bool {
	if err == nil {
		return false
	}
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == mysqlDuplicateEntry
	}
	var se sqliteError
	if errors.As(err, &se) {
		return se.Code() == sqliteConstraintPrimary || se.Code() == sqliteConstraintUnique
	}
	return false
}

// isRetryable reports whether err aborted a transaction that may simply be
// run again.
func isRetryable(err error) bool {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == mysqlDeadlock || me.Number == mysqlLockWaitTimeout
	}
	var se sqliteError
	if errors.As(err, &se) {
		c := se.Code() & sqlitePrimaryCodeMask
		return c == sqliteBusy || c == sqliteLocked
	}
	return false
}
