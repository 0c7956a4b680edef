// Package sqlstore implements tcc.Store with gorm on MySQL/MariaDB and on
// embedded SQLite.
//
// The hot path uses plain SQL through gorm's Exec/Raw (no model reflection),
// one short database transaction per Store method, and never a transaction
// held across a network call. Every state change is a compare-and-set; see
// tcc.Store for the contract.
//
// Schema changes are versioned SQL migrations under migrations/<dialect>,
// applied by Migrate (goose, with a lock on MySQL so that several
// coordinators starting together migrate once).
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	sqlite "github.com/glebarez/go-sqlite"
	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/tcc"
)

// Store is a tcc.Store over a gorm database.
type Store struct {
	db      *gorm.DB
	dialect database.Dialect
	owned   bool
}

var _ tcc.Store = (*Store)(nil)

// Open opens the database named by spec, applies migrations and returns a
// Store that owns the connection.
func Open(ctx context.Context, spec string) (*Store, error) {
	db, dialect, err := database.Open(spec)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, db, dialect); err != nil {
		_ = database.Close(db)
		return nil, err
	}
	return &Store{db: db, dialect: dialect, owned: true}, nil
}

// New returns a Store over an open, migrated database; the caller keeps
// ownership of db.
func New(db *gorm.DB, dialect database.Dialect) *Store {
	return &Store{db: db, dialect: dialect}
}

// DB returns the underlying handle (for tests and tools).
func (s *Store) DB() *gorm.DB { return s.db }

// Dialect returns the database dialect.
func (s *Store) Dialect() database.Dialect { return s.dialect }

// Close closes the connection pool if the Store owns it.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	return database.Close(s.db)
}

const recordColumns = `gid, state, version, timeout_ms, deadline_us, decided_us, next_attempt_us, lease_owner,
	attempts, branch_count, last_error, abort_reason, needs_attention, tombstone, labels, created_us, updated_us`

const branchColumns = `gid, branch_id, participant, payload, payload_digest, state, attempts, last_error,
	conflict, resolution, created_us, updated_us`

// InsertTransaction implements tcc.Store.
func (s *Store) InsertTransaction(ctx context.Context, tx *tcc.Transaction) error {
	labels, err := encodeLabels(tx.Labels)
	if err != nil {
		return err
	}
	res := s.db.WithContext(ctx).Exec(`INSERT INTO transaction_record (`+recordColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tx.GID, string(tx.State), tx.Version, tx.Timeout.Milliseconds(), micros(tx.Deadline), micros(tx.DecidedAt), micros(tx.NextAttemptAt),
		tx.LeaseOwner, tx.Attempts, len(tx.Branches), tx.LastError, tx.AbortReason, tx.NeedsAttention, tx.Tombstone,
		labels, micros(tx.CreatedAt), micros(tx.UpdatedAt))
	return s.interpret("insert transaction", res.Error)
}

// GetTransaction implements tcc.Store.
func (s *Store) GetTransaction(ctx context.Context, gid string) (*tcc.Transaction, error) {
	return s.getTransaction(s.db.WithContext(ctx), gid)
}

func (s *Store) getTransaction(db *gorm.DB, gid string) (*tcc.Transaction, error) {
	tx, err := s.getRecord(db, gid)
	if err != nil {
		return nil, err
	}
	rows, err := db.Raw(`SELECT `+branchColumns+` FROM branch_record WHERE gid = ? ORDER BY branch_id`, gid).Rows()
	if err != nil {
		return nil, s.interpret("get branches", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b tcc.Branch
		var state string
		var created, updated int64
		if err := rows.Scan(&b.GID, &b.BranchID, &b.Participant, &b.Payload, &b.PayloadDigest, &state,
			&b.Attempts, &b.LastError, &b.Conflict, &b.Resolution, &created, &updated); err != nil {
			return nil, s.interpret("scan branch", err)
		}
		b.State = tcc.BranchState(state)
		b.CreatedAt, b.UpdatedAt = fromMicros(created), fromMicros(updated)
		if b.Payload == nil {
			b.Payload = []byte{}
		}
		tx.Branches = append(tx.Branches, b)
	}
	if err := rows.Err(); err != nil {
		return nil, s.interpret("get branches", err)
	}
	return tx, nil
}

func (s *Store) getRecord(db *gorm.DB, gid string) (*tcc.Transaction, error) {
	rows, err := db.Raw(`SELECT `+recordColumns+` FROM transaction_record WHERE gid = ?`, gid).Rows()
	if err != nil {
		return nil, s.interpret("get transaction", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, s.interpret("get transaction", err)
		}
		return nil, fmt.Errorf("%w: %s", tcc.ErrNotFound, gid)
	}
	tx, err := s.scanRecord(rows)
	if err != nil {
		return nil, err
	}
	return tx, rows.Err()
}

func (s *Store) scanRecord(rows *sql.Rows) (*tcc.Transaction, error) {
	var (
		tx                                              tcc.Transaction
		state, labels                                   string
		timeoutMS, deadline, decided, next, created, up int64
		branchCount                                     int
	)
	if err := rows.Scan(&tx.GID, &state, &tx.Version, &timeoutMS, &deadline, &decided, &next, &tx.LeaseOwner,
		&tx.Attempts, &branchCount, &tx.LastError, &tx.AbortReason, &tx.NeedsAttention, &tx.Tombstone,
		&labels, &created, &up); err != nil {
		return nil, s.interpret("scan transaction", err)
	}
	tx.State = tcc.State(state)
	tx.Timeout = time.Duration(timeoutMS) * time.Millisecond
	tx.Deadline, tx.DecidedAt, tx.NextAttemptAt = fromMicros(deadline), fromMicros(decided), fromMicros(next)
	tx.CreatedAt, tx.UpdatedAt = fromMicros(created), fromMicros(up)
	var err error
	if tx.Labels, err = decodeLabels(labels); err != nil {
		return nil, fmt.Errorf("get transaction %s: %w", tx.GID, err)
	}
	return &tx, nil
}

// AddBranch implements tcc.Store.
func (s *Store) AddBranch(ctx context.Context, p tcc.AddBranchParams) error {
	b := p.Branch
	return s.interpret("add branch", s.db.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		now := micros(p.Now)
		res := db.Exec(`UPDATE transaction_record`+s.pk()+` SET branch_count = branch_count + 1, version = version + 1, updated_us = ?
			WHERE gid = ? AND state = ? AND branch_count < ?`, now, b.GID, string(tcc.StateTrying), p.MaxBranches)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			tx, err := s.getRecord(db, b.GID)
			if err != nil {
				return err
			}
			if tx.State != tcc.StateTrying {
				return &tcc.StateError{GID: b.GID, Actual: tx.State, Op: "register branch " + b.BranchID}
			}
			return tcc.ErrTooManyBranches
		}
		return db.Exec(`INSERT INTO branch_record (gid, branch_id, participant, payload, payload_digest, state, created_us, updated_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			b.GID, b.BranchID, b.Participant, nonNil(b.Payload), b.PayloadDigest, string(tcc.BranchRegistered), now, now).Error
	}))
}

// Decide implements tcc.Store.
//
// model: decide
func (s *Store) Decide(ctx context.Context, p tcc.DecideParams) (*tcc.Transaction, bool, error) {
	db := s.db.WithContext(ctx)
	state := tcc.StateCommitting
	reason := ""
	if p.Outcome == tcc.Abort {
		state = tcc.StateAborting
		reason = p.AbortReason
	}
	res := db.Exec(`UPDATE transaction_record`+s.pk()+`
		SET state = ?, version = version + 1, lease_owner = ?, next_attempt_us = ?, abort_reason = ?, decided_us = ?, updated_us = ?
		WHERE gid = ? AND state = ?`,
		string(state), p.Owner, micros(p.LeaseUntil), reason, micros(p.Now), micros(p.Now), p.GID, string(tcc.StateTrying))
	if res.Error != nil {
		return nil, false, s.interpret("decide", res.Error)
	}
	tx, err := s.getTransaction(db, p.GID)
	if err != nil {
		return nil, false, err
	}
	return tx, res.RowsAffected == 1, nil
}

// RecordRound implements tcc.Store.
//
// model: mark_branch, finish
func (s *Store) RecordRound(ctx context.Context, p tcc.RoundParams) error {
	final := tcc.StateCommitted
	decided := tcc.StateCommitting
	branchDone := tcc.BranchConfirmed
	if p.Outcome == tcc.Abort {
		final, decided, branchDone = tcc.StateAborted, tcc.StateAborting, tcc.BranchCancelled
	}
	now := micros(p.Now)
	lost := false
	err := s.db.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		for _, id := range p.Done {
			if err := db.Exec(`UPDATE branch_record SET state = ?, attempts = attempts + 1, last_error = '', updated_us = ?
				WHERE gid = ? AND branch_id = ? AND state = ?`,
				string(branchDone), now, p.GID, id, string(tcc.BranchRegistered)).Error; err != nil {
				return err
			}
		}
		for _, f := range p.Failed {
			if err := db.Exec(`UPDATE branch_record SET attempts = attempts + 1, last_error = ?, updated_us = ?
				WHERE gid = ? AND branch_id = ? AND state = ?`,
				f.Err, now, p.GID, f.BranchID, string(tcc.BranchRegistered)).Error; err != nil {
				return err
			}
		}
		for _, f := range p.Conflicts {
			if err := db.Exec(`UPDATE branch_record SET attempts = attempts + 1, last_error = ?, conflict = ?, updated_us = ?
				WHERE gid = ? AND branch_id = ? AND state = ?`,
				f.Err, true, now, p.GID, f.BranchID, string(tcc.BranchRegistered)).Error; err != nil {
				return err
			}
		}
		var res *gorm.DB
		if p.Finish {
			// next_attempt_us of a final record is its finish time, from
			// which retention is counted.
			res = db.Exec(`UPDATE transaction_record`+s.pk()+`
				SET state = ?, version = version + 1, attempts = attempts + 1, lease_owner = '', next_attempt_us = ?,
				    updated_us = ?
				WHERE gid = ? AND version = ? AND state = ?
				  AND NOT EXISTS (SELECT 1 FROM branch_record WHERE gid = ? AND state = ?)`,
				string(final), now, now, p.GID, p.Version, string(decided), p.GID, string(tcc.BranchRegistered))
		} else {
			res = db.Exec(`UPDATE transaction_record`+s.pk()+`
				SET version = version + 1, attempts = attempts + 1, lease_owner = '', next_attempt_us = ?,
				    last_error = ?, needs_attention = (needs_attention OR ?), updated_us = ?
				WHERE gid = ? AND version = ? AND state = ?`,
				micros(p.NextAttemptAt), p.LastError, p.NeedsAttention, now, p.GID, p.Version, string(decided))
		}
		if res.Error != nil {
			return res.Error
		}
		lost = res.RowsAffected == 0
		return nil
	})
	if err != nil {
		return s.interpret("record round", err)
	}
	if lost {
		return fmt.Errorf("record round of %s at version %d: %w", p.GID, p.Version, tcc.ErrConflict)
	}
	return nil
}

// Claim implements tcc.Store.
//
// model: claim
func (s *Store) Claim(ctx context.Context, p tcc.ClaimParams) (*tcc.Transaction, error) {
	db := s.db.WithContext(ctx)
	res := db.Exec(`UPDATE transaction_record`+s.pk()+`
		SET version = version + 1, lease_owner = ?, next_attempt_us = ?, updated_us = ?
		WHERE gid = ? AND version = ? AND next_attempt_us <= ? AND state IN (?, ?, ?)`,
		p.Owner, micros(p.LeaseUntil), micros(p.Now), p.GID, p.Version, micros(p.Now),
		string(tcc.StateTrying), string(tcc.StateCommitting), string(tcc.StateAborting))
	if res.Error != nil {
		return nil, s.interpret("claim", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, fmt.Errorf("claim %s at version %d: %w", p.GID, p.Version, tcc.ErrConflict)
	}
	return s.getTransaction(db, p.GID)
}

// ListDue implements tcc.Store. It asks once per unfinished state so that
// each query is one range scan of the (state, next_attempt_us) index in
// index order.
func (s *Store) ListDue(ctx context.Context, now time.Time, limit int) ([]tcc.DueRef, error) {
	var out []tcc.DueRef
	for _, st := range []tcc.State{tcc.StateCommitting, tcc.StateAborting, tcc.StateTrying} {
		if len(out) >= limit {
			break
		}
		rows, err := s.db.WithContext(ctx).Raw(`SELECT gid, version FROM transaction_record
			WHERE state = ? AND next_attempt_us <= ? ORDER BY next_attempt_us LIMIT ?`,
			string(st), micros(now), limit-len(out)).Rows()
		if err != nil {
			return nil, s.interpret("list due", err)
		}
		for rows.Next() {
			r := tcc.DueRef{State: st}
			if err := rows.Scan(&r.GID, &r.Version); err != nil {
				rows.Close()
				return nil, s.interpret("list due", err)
			}
			out = append(out, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, s.interpret("list due", err)
		}
	}
	return out, nil
}

// pk returns the index hint that makes MySQL update a record through its
// primary key. Without it the optimizer may pick the (state,
// next_attempt_us) index for "gid = ? AND state = ?" on small tables, and
// concurrent compare-and-sets on one row then deadlock on that index's gap
// locks instead of queueing on the row.
func (s *Store) pk() string {
	if s.dialect == database.MySQL {
		return " FORCE INDEX (PRIMARY)"
	}
	return ""
}

// interpret translates driver errors into tcc errors at the boundary; SQL
// text never reaches a caller.
func (s *Store) interpret(op string, err error) error {
	if err == nil {
		return nil
	}
	var (
		myErr *gomysql.MySQLError
		sqErr *sqlite.Error
		st    *tcc.StateError
	)
	switch {
	case errors.Is(err, tcc.ErrNotFound), errors.Is(err, tcc.ErrTooManyBranches), errors.As(err, &st):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case errors.As(err, &myErr):
		switch myErr.Number {
		case 1062: // ER_DUP_ENTRY
			return fmt.Errorf("%s: %w", op, tcc.ErrDuplicate)
		case 1213, 1205: // deadlock, lock wait timeout: nothing applied, retryable
			return fmt.Errorf("%s: %w (mysql error %d)", op, tcc.ErrUnavailable, myErr.Number)
		}
		return fmt.Errorf("%s: mysql error %d: %w", op, myErr.Number, tcc.ErrUnavailable)
	case errors.As(err, &sqErr):
		switch sqErr.Code() {
		case 1555, 2067: // SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE
			return fmt.Errorf("%s: %w", op, tcc.ErrDuplicate)
		}
		return fmt.Errorf("%s: sqlite error %d: %w", op, sqErr.Code(), tcc.ErrUnavailable)
	case errors.Is(err, sql.ErrConnDone), errors.Is(err, gomysql.ErrInvalidConn), isNetError(err):
		return fmt.Errorf("%s: %w", op, tcc.ErrUnavailable)
	}
	return fmt.Errorf("%s: %w: %v", op, tcc.ErrUnavailable, err)
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn)
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func encodeLabels(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode labels: %w", err)
	}
	return string(b), nil
}

func decodeLabels(s string) (map[string]string, error) {
	if s == "" || s == "{}" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("decode labels: %w", err)
	}
	return m, nil
}
