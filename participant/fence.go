package participant

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"gorm.io/gorm"

	"github.com/settle-tcc/settle/internal/database"
)

// State is the state of a fence row.
type State string

// Fence row states.
const (
	// StateTried: Try was applied and holds a reservation; Confirm or
	// Cancel will follow (or the check-back worker will ask).
	StateTried State = "TRIED"
	// StateConfirmed: Confirm applied the reservation. Final.
	StateConfirmed State = "CONFIRMED"
	// StateCancelled: Cancel released the reservation, or recorded a null
	// compensation when no Try had been applied. Final.
	StateCancelled State = "CANCELLED"
)

// Control-flow errors of the fence; none leaves the package.
var (
	// errFenceExists: the INSERT of the fence row hit an existing row.
	errFenceExists = errors.New("participant: fence row exists")
	// errNotTried: the compare-and-set from TRIED matched no row.
	errNotTried = errors.New("participant: fence row not in TRIED state with this payload")
)

const (
	// maxTxAttempts bounds the retries of a local transaction that hit a
	// deadlock, a lock wait timeout or a busy database. Many concurrent
	// duplicates of a Try that is refused do deadlock on InnoDB: when the
	// first one rolls back its fence row, every waiter holds a shared lock
	// on the key and needs an exclusive one; InnoDB picks victims, and the
	// victims run again here.
	maxTxAttempts = 12
	// maxRaces bounds how often a call starts over after its fence row
	// changed under it.
	maxRaces = 4
	// firstBackoff is the first pause before retrying a local transaction;
	// it doubles up to maxTxBackoff.
	firstBackoff = 5 * time.Millisecond
	maxTxBackoff = 200 * time.Millisecond
)

// fenceRow is the part of a fence row the calls decide on.
type fenceRow struct {
	state  State
	digest string
	// tried: a Try was applied (false for a null compensation).
	tried bool
}

// micros converts a time to the stored form.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros converts the stored form back to a UTC time.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// sqlText holds the fence statements for one table.
type sqlText struct {
	insert, move, read string
}

// newSQLText returns the statements for table in dialect (gorm's dialector
// name). On PostgreSQL the insert says ON CONFLICT DO NOTHING: an existing
// row is then "no row inserted" rather than an error, because an error
// inside a PostgreSQL transaction aborts it (every later statement fails
// until ROLLBACK). The row is still inserted first, and a concurrent
// insert of the same key is still waited for, as on the other databases.
func newSQLText(table, dialect string) sqlText {
	onConflict := ""
	if dialect == "postgres" {
		onConflict = " ON CONFLICT (gid, branch_id) DO NOTHING"
	}
	return sqlText{
		insert: "INSERT INTO " + table + " (gid, branch_id, state, tried, payload_digest, payload, created_us, updated_us, next_check_us, check_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)" + onConflict,
		move:   "UPDATE " + table + " SET state = ?, updated_us = ? WHERE gid = ? AND branch_id = ? AND state = ? AND payload_digest = ?",
		read:   "SELECT state, payload_digest, tried FROM " + table + " WHERE gid = ? AND branch_id = ?",
	}
}

// insertFence creates the fence row for r in state. An existing row yields
// errFenceExists (the caller's transaction must then roll back).
func (p *Participant) insertFence(tx *gorm.DB, r Request, state State, dig string, now time.Time) error {
	tried := 0
	if state == StateTried {
		tried = 1
	}
	payload := r.Payload
	if payload == nil {
		payload = []byte{} // NOT NULL
	}
	us := micros(now)
	res := tx.Exec(p.sql.insert, r.GID, r.BranchID, string(state), tried, dig, payload, us, us, us+p.checkAfter.Microseconds())
	if IsDuplicateKey(res.Error) || (res.Error == nil && res.RowsAffected == 0) {
		return errFenceExists
	}
	return res.Error
}

// moveFence is the compare-and-set TRIED -> to for r's row with digest
// dig. No matching row yields errNotTried.
func (p *Participant) moveFence(tx *gorm.DB, r Request, to State, dig string, now time.Time) error {
	res := tx.Exec(p.sql.move, string(to), micros(now), r.GID, r.BranchID, string(StateTried), dig)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return errNotTried
	}
	return nil
}

// readFence reads r's committed fence row outside any transaction.
func (p *Participant) readFence(ctx context.Context, r Request) (fenceRow, bool, error) {
	var f fenceRow
	var state string
	var tried int
	err := p.db.WithContext(ctx).Raw(p.sql.read, r.GID, r.BranchID).Row().Scan(&state, &f.digest, &tried)
	if errors.Is(err, sql.ErrNoRows) {
		return fenceRow{}, false, nil
	}
	if err != nil {
		return fenceRow{}, false, fmt.Errorf("participant: read fence: %w", err)
	}
	f.state = State(state)
	f.tried = tried != 0
	return f, true, nil
}

// inTx runs fn in a local transaction, retrying it from the start when the
// database reports a deadlock, a lock wait timeout or a busy file.
func inTx(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) error {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		err := db.WithContext(ctx).Transaction(fn)
		if err == nil || !database.IsRetryable(err) || attempt >= maxTxAttempts {
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
		backoff = min(2*backoff, maxTxBackoff)
	}
}

// IsDuplicateKey reports whether err is a primary or unique key violation
// reported by MySQL/MariaDB, PostgreSQL (SQLSTATE 23505) or SQLite. The
// fence relies on it; handlers may too (an insert-first idempotency key of
// their own). On PostgreSQL a failed statement aborts the whole local
// transaction: a handler that wants to go on after a duplicate key must
// run the insert inside a savepoint (tx.SavePoint, tx.RollbackTo) or use
// INSERT ... ON CONFLICT DO NOTHING; otherwise the call fails and nothing
// of it is committed (the fence row neither).
func IsDuplicateKey(err error) bool { return database.IsDuplicateKey(err) }
