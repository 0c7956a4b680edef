// Package sqlstore implements tcc.Store with gorm on MySQL/MariaDB, on
// PostgreSQL and on embedded SQLite (the SQL that differs is in
// dialect.go).
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
	"strings"
	"sync/atomic"
	"time"

	sqlite "github.com/glebarez/go-sqlite"
	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/tcc"
)

// Store is a tcc.Store over a gorm database.
type Store struct {
	db      *gorm.DB
	sql     *sql.DB // the pool behind db, used directly on the hot path
	dialect database.Dialect
	owned   bool

	roundTrips atomic.Int64
	binds      binds

	writes writer

	known knownRecords
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
	return newStore(db, dialect, true)
}

// New returns a Store over an open, migrated database; the caller keeps
// ownership of db.
func New(db *gorm.DB, dialect database.Dialect) (*Store, error) {
	return newStore(db, dialect, false)
}

func newStore(db *gorm.DB, dialect database.Dialect, owned bool) (*Store, error) {
	sqlDB, err := db.DB()
	if err != nil {
		if owned {
			_ = database.Close(db)
		}
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	s := &Store{db: db, sql: sqlDB, dialect: dialect, owned: owned}
	s.writes.flush = s.flushWrites
	return s, nil
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
	attempts, branch_count, last_error, abort_reason, needs_attention, tombstone, labels, created_us, updated_us, decider`

const branchColumns = `gid, branch_id, participant, payload, payload_digest, state, attempts, last_error,
	conflict, resolution, created_us, updated_us`

// The methods on the transaction hot path (InsertTransaction,
// GetTransaction, AddBranch, RegisterBranch, Decide, RecordRound, Claim) use
// database/sql directly with plain SQL: no ORM reflection, no callbacks, and
// with MySQL's client-side interpolation no prepare round trip. Each one
// costs a fixed, small number of round trips, counted by RoundTrips. Every
// write carries its history (history.go) in the same transaction, which on
// MySQL is the same script and on PostgreSQL the same pipeline
// (pipeline.go), or in the same statement, so it costs no round trip
// there. "On MySQL" below holds for PostgreSQL too:
//
//	InsertTransaction  1 (with branches on SQLite: 4, BEGIN, two INSERTs,
//	                   COMMIT; on MySQL those four are one script)
//	GetTransaction     1 (record and branches in one joined SELECT)
//	RegisterBranch     1 on MySQL when the record is one this store wrote
//	                   (known.go: one script with the compare-and-set on
//	                   the version and the insert, no read; on PostgreSQL
//	                   one statement, dialect.thenInsert); otherwise 5
//	                   (BEGIN, UPDATE record, INSERT branch, SELECT,
//	                   COMMIT)
//	Decide             1 (UPDATE record on state and version, autocommit,
//	                   durable; the decision's history is in the record's
//	                   own columns) when the record is one this store
//	                   wrote (known.go); otherwise 2 (UPDATE on state,
//	                   SELECT)
//	RecordRound        1 on MySQL (one script: BEGIN, the branch updates,
//	                   the failed attempts' events if any, the record's
//	                   compare-and-set, COMMIT); on SQLite those
//	                   statements one by one
//	Claim              2
//
// so a two-branch transaction registered at Begin costs 1 + 1 + 1 = 3 round
// trips on MySQL when it runs alone, and 1 + 2*1 + 1 + 1 = 5 with one
// RegisterBranch per branch through the instance that began it: the same
// as before the history. Under concurrency the writes are grouped
// (batch.go): the Begins, registrations and decisions of known records and
// delivery rounds queued while a write runs share the next one, 1 round
// trip on MySQL for all of them; other registrations and decisions cost 5
// per batch.

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// RoundTrips returns how many statements (database round trips, BEGIN and
// COMMIT included) the hot-path methods have sent since the Store was
// opened.
func (s *Store) RoundTrips() int64 { return s.roundTrips.Load() }

func (s *Store) exec(ctx context.Context, q querier, query string, args ...any) (int64, error) {
	s.roundTrips.Add(1)
	res, err := q.ExecContext(ctx, s.bind(query), s.args(args)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	s.roundTrips.Add(1)
	return s.sql.BeginTx(ctx, nil)
}

func (s *Store) commit(tx *sql.Tx) error {
	s.roundTrips.Add(1)
	return tx.Commit()
}

// InsertTransaction implements tcc.Store. Concurrent inserts are grouped
// into multi-row INSERTs (see batch.go).
func (s *Store) InsertTransaction(ctx context.Context, tx *tcc.Transaction) error {
	_, err := submit(ctx, &s.writes, &s.writes.queued.inserts, tx)
	return err
}

// insertAll writes records and the branches registered with their Begins:
// one multi-row INSERT of the records and, when some have branches, one of
// the branches, in one database transaction (one round trip on MySQL, see
// script.go). A duplicate gid fails it whole (ErrDuplicate, nothing
// written).
func (s *Store) insertAll(ctx context.Context, txs []*tcc.Transaction) error {
	stmts, err := insertStatements(txs)
	if err != nil {
		return err
	}
	if len(stmts) == 1 {
		_, err := s.exec(ctx, s.sql, stmts[0].query, stmts[0].args...)
		return s.interpret("insert transaction", err)
	}
	_, err = s.write(ctx, stmts...)
	return s.interpret("insert transaction", err)
}

// insertStatements builds the INSERT of records, when some have
// branches the INSERT of those, and when some are tombstones the INSERT of
// their decision events (history.go; a Begin's own events are its record
// and branch rows).
func insertStatements(txs []*tcc.Transaction) ([]stmt, error) {
	records, err := recordsInsert(txs)
	if err != nil {
		return nil, err
	}
	stmts := []stmt{records}
	if branches := branchesOf(txs...); len(branches) > 0 {
		stmts = append(stmts, branchesInsert(branches))
	}
	var events []tcc.Event
	for _, tx := range txs {
		if tx.Tombstone {
			events = append(events, tombstoneEvent(tx))
		}
	}
	if len(events) > 0 {
		stmts = append(stmts, eventsInsert(events))
	}
	return stmts, nil
}

// recordsInsert builds the multi-row INSERT of records (their branch_count
// is their branches).
func recordsInsert(txs []*tcc.Transaction) (stmt, error) {
	var sb strings.Builder
	sb.WriteString(`INSERT INTO transaction_record (` + recordColumns + `) VALUES `)
	args := make([]any, 0, 18*len(txs))
	for i, tx := range txs {
		labels, err := encodeLabels(tx.Labels)
		if err != nil {
			return stmt{}, err
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, tx.GID, string(tx.State), tx.Version, tx.Timeout.Milliseconds(), micros(tx.Deadline), micros(tx.DecidedAt),
			micros(tx.NextAttemptAt), tx.LeaseOwner, tx.Attempts, len(tx.Branches), tx.LastError, tx.AbortReason, tx.NeedsAttention,
			tx.Tombstone, labels, micros(tx.CreatedAt), micros(tx.UpdatedAt), tx.Decider)
	}
	return stmt{sb.String(), args}, nil
}

// insertBranches writes branches (REGISTERED, with their own gid and
// times) in one multi-row INSERT; none is a no-op.
func (s *Store) insertBranches(ctx context.Context, q querier, branches []tcc.Branch) error {
	if len(branches) == 0 {
		return nil
	}
	st := branchesInsert(branches)
	if _, err := s.exec(ctx, q, st.query, st.args...); err != nil {
		return s.interpret("insert branches", err)
	}
	return nil
}

// branchesInsert builds the multi-row INSERT of branches (at least one).
func branchesInsert(branches []tcc.Branch) stmt {
	var sb strings.Builder
	sb.WriteString(`INSERT INTO branch_record (gid, branch_id, participant, payload, payload_digest, state, created_us, updated_us) VALUES `)
	args := make([]any, 0, 8*len(branches))
	for i, b := range branches {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, b.GID, b.BranchID, b.Participant, nonNil(b.Payload), b.PayloadDigest, string(tcc.BranchRegistered),
			micros(b.CreatedAt), micros(b.UpdatedAt))
	}
	return stmt{sb.String(), args}
}

// branchesOf returns the branches of txs, each with its transaction's gid.
func branchesOf(txs ...*tcc.Transaction) []tcc.Branch {
	var out []tcc.Branch
	for _, tx := range txs {
		for _, b := range tx.Branches {
			b.GID = tx.GID
			out = append(out, b)
		}
	}
	return out
}

// GetTransaction implements tcc.Store.
func (s *Store) GetTransaction(ctx context.Context, gid string) (*tcc.Transaction, error) {
	return s.load(ctx, s.sql, gid)
}

// loadQuery reads a record and its branches in one round trip; a record
// without branches comes back as one row with NULL branch columns.
const loadQuery = `SELECT r.gid, r.state, r.version, r.timeout_ms, r.deadline_us, r.decided_us, r.next_attempt_us,
	r.lease_owner, r.attempts, r.branch_count, r.last_error, r.abort_reason, r.needs_attention, r.tombstone, r.labels,
	r.created_us, r.updated_us, r.decider,
	b.branch_id, b.participant, b.payload, b.payload_digest, b.state, b.attempts, b.last_error, b.conflict,
	b.resolution, b.created_us, b.updated_us
	FROM transaction_record r LEFT JOIN branch_record b ON b.gid = r.gid
	WHERE r.gid = ? ORDER BY b.branch_id`

// load returns the record with its branches ordered by branch id, or
// ErrNotFound.
func (s *Store) load(ctx context.Context, q querier, gid string) (*tcc.Transaction, error) {
	s.roundTrips.Add(1)
	rows, err := q.QueryContext(ctx, s.bind(loadQuery), gid)
	if err != nil {
		return nil, s.interpret("get transaction", err)
	}
	defer rows.Close()
	var tx *tcc.Transaction
	if err := s.scanLoaded(rows, func(t *tcc.Transaction) { tx = t }); err != nil {
		return nil, err
	}
	if tx == nil {
		return nil, fmt.Errorf("%w: %s", tcc.ErrNotFound, gid)
	}
	return tx, nil
}

// recordRow holds the scanned columns of recordColumns (in that order).
type recordRow struct {
	tx                                              tcc.Transaction
	state, labels                                   string
	timeoutMS, deadline, decided, next, created, up int64
	branchCount                                     int
}

// dest returns the scan destinations of recordColumns.
func (r *recordRow) dest() []any {
	return []any{&r.tx.GID, &r.state, &r.tx.Version, &r.timeoutMS, &r.deadline, &r.decided, &r.next, &r.tx.LeaseOwner,
		&r.tx.Attempts, &r.branchCount, &r.tx.LastError, &r.tx.AbortReason, &r.tx.NeedsAttention, &r.tx.Tombstone,
		&r.labels, &r.created, &r.up, &r.tx.Decider}
}

// record converts the scanned columns into a Transaction (without
// branches).
func (r *recordRow) record() (*tcc.Transaction, error) {
	tx := r.tx
	tx.State = tcc.State(r.state)
	tx.Timeout = time.Duration(r.timeoutMS) * time.Millisecond
	tx.Deadline, tx.DecidedAt, tx.NextAttemptAt = fromMicros(r.deadline), fromMicros(r.decided), fromMicros(r.next)
	tx.CreatedAt, tx.UpdatedAt = fromMicros(r.created), fromMicros(r.up)
	var err error
	if tx.Labels, err = decodeLabels(r.labels); err != nil {
		return nil, fmt.Errorf("get transaction %s: %w", tx.GID, err)
	}
	return &tx, nil
}

// scanLoaded reads the rows of loadQuery (ordered by gid, then branch id)
// and calls emit with each record and its branches.
func (s *Store) scanLoaded(rows *sql.Rows, emit func(*tcc.Transaction)) error {
	var tx *tcc.Transaction
	for rows.Next() {
		var (
			r                                       recordRow
			bID, bPart, bDigest, bState, bErr, bRes sql.NullString
			bAttempts, bCreated, bUpdated           sql.NullInt64
			bConflict                               sql.NullBool
			bPayload                                []byte
		)
		dest := append(r.dest(), &bID, &bPart, &bPayload, &bDigest, &bState, &bAttempts, &bErr, &bConflict, &bRes, &bCreated, &bUpdated)
		if err := rows.Scan(dest...); err != nil {
			return s.interpret("scan transaction", err)
		}
		if tx == nil || tx.GID != r.tx.GID {
			if tx != nil {
				emit(tx)
			}
			var err error
			if tx, err = r.record(); err != nil {
				return err
			}
		}
		if !bID.Valid {
			continue
		}
		if bPayload == nil {
			bPayload = []byte{}
		}
		tx.Branches = append(tx.Branches, tcc.Branch{
			GID: tx.GID, BranchID: bID.String, Participant: bPart.String, Payload: bPayload, PayloadDigest: bDigest.String,
			State: tcc.BranchState(bState.String), Attempts: int(bAttempts.Int64), LastError: bErr.String,
			Conflict: bConflict.Bool, Resolution: bRes.String,
			CreatedAt: fromMicros(bCreated.Int64), UpdatedAt: fromMicros(bUpdated.Int64),
		})
	}
	if err := rows.Err(); err != nil {
		return s.interpret("get transaction", err)
	}
	if tx != nil {
		emit(tx)
	}
	return nil
}

// AddBranch implements tcc.Store.
func (s *Store) AddBranch(ctx context.Context, p tcc.AddBranchParams) error {
	_, err := s.RegisterBranch(ctx, p)
	return err
}

// RegisterBranch implements tcc.Store: in one database transaction, a
// compare-and-set on the record (TRYING, under the branch limit; it also
// serialises with Decide on the record's row lock), the branch insert and
// the read of the record as it is after them.
//
// model: register
func (s *Store) RegisterBranch(ctx context.Context, p tcc.AddBranchParams) (*tcc.Transaction, error) {
	return submit(ctx, &s.writes, &s.writes.queued.registers, p)
}

func (s *Store) registerBranch(ctx context.Context, p tcc.AddBranchParams) (*tcc.Transaction, error) {
	b := p.Branch
	now := micros(p.Now)
	dbtx, err := s.begin(ctx)
	if err != nil {
		return nil, s.interpret("register branch", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = dbtx.Rollback()
		}
	}()
	n, err := s.exec(ctx, dbtx, `UPDATE transaction_record`+s.pk()+` SET branch_count = branch_count + 1, version = version + 1, updated_us = ?
		WHERE gid = ? AND state = ? AND branch_count < ?`, now, b.GID, string(tcc.StateTrying), p.MaxBranches)
	if err != nil {
		return nil, s.interpret("register branch", err)
	}
	var refusal error
	if n == 0 {
		refusal = tcc.ErrTooManyBranches // or not TRYING, or absent: decided below
	} else {
		b.CreatedAt, b.UpdatedAt = p.Now, p.Now
		if err := s.insertBranches(ctx, dbtx, []tcc.Branch{b}); err != nil {
			refusal = err
			if !errors.Is(refusal, tcc.ErrDuplicate) {
				return nil, refusal
			}
		}
	}
	if refusal == nil {
		tx, err := s.load(ctx, dbtx, b.GID)
		if err != nil {
			return nil, err
		}
		if err := s.commit(dbtx); err != nil {
			return nil, s.interpret("register branch", err)
		}
		committed = true
		s.known.put(tx, p.Now)
		return tx, nil
	}
	// Refused: undo the record update, then report the record as it is.
	_ = dbtx.Rollback()
	committed = true
	tx, err := s.load(ctx, s.sql, b.GID)
	if err != nil {
		return nil, err
	}
	if tx.State == tcc.StateTrying {
		s.known.put(tx, p.Now)
	}
	if errors.Is(refusal, tcc.ErrDuplicate) {
		return tx, fmt.Errorf("register branch %s of %s: %w", b.BranchID, b.GID, tcc.ErrDuplicate)
	}
	if tx.State != tcc.StateTrying {
		return tx, &tcc.StateError{GID: b.GID, Actual: tx.State, Op: "register branch " + b.BranchID}
	}
	if len(tx.Branches) < p.MaxBranches {
		// The update matched nothing, yet the record is TRYING with room:
		// it did not exist when the update ran (a Begin of the same gid
		// raced this call). The registration found no transaction.
		return nil, fmt.Errorf("%w: %s", tcc.ErrNotFound, b.GID)
	}
	return tx, tcc.ErrTooManyBranches
}

// Decide implements tcc.Store. The compare-and-set is one autocommit
// statement, so the decision is durable when it returns. For a record this
// store wrote it also requires the remembered version and the remembered
// record is returned, decided (known.go); otherwise the record is read in
// one more round trip. Concurrent decisions are grouped (batch.go).
//
// model: decide
func (s *Store) Decide(ctx context.Context, p tcc.DecideParams) (*tcc.Transaction, bool, error) {
	d, err := submit(ctx, &s.writes, &s.writes.queued.decides, p)
	return d.tx, d.won, err
}

func (s *Store) decide(ctx context.Context, p tcc.DecideParams) (*tcc.Transaction, bool, error) {
	// One statement, autocommit: the compare-and-set, which also writes
	// the decision's history (decided_by, decided_instance; history.go).
	cas := decideRecord(s.d(), p, 0)
	for attempt := 0; ; attempt++ {
		n, err := s.exec(ctx, s.sql, cas.query, cas.args...)
		// A deadlock or lock wait timeout rolled the one-statement
		// compare-and-set back whole: run it again (bounded) rather than
		// answer UNAVAILABLE for what is only contention.
		for try := 0; try < 3 && err != nil && database.IsRetryable(err) && ctx.Err() == nil; try++ {
			n, err = s.exec(ctx, s.sql, cas.query, cas.args...)
		}
		if err != nil {
			return nil, false, s.interpret("decide", err)
		}
		tx, err := s.load(ctx, s.sql, p.GID)
		if err != nil {
			return nil, false, err
		}
		// Still TRYING after a compare-and-set that matched nothing: the
		// record did not exist when it ran (a Begin of the same gid
		// created it just after). Decide again, now that it exists
		// (bounded: a record, once there, stays until it is decided).
		if n == 1 || tx.State != tcc.StateTrying || attempt == 2 {
			return tx, n == 1, nil
		}
	}
}

// RecordRound implements tcc.Store: the branch facts and the record's
// compare-and-set in one database transaction. All done branches move in
// one statement. On MySQL the whole round is one round trip (script.go);
// concurrent finishing rounds are grouped (batch.go).
//
// model: record_round, finish
func (s *Store) RecordRound(ctx context.Context, p tcc.RoundParams) error {
	_, err := submit(ctx, &s.writes, &s.writes.queued.rounds, p)
	return err
}

func (s *Store) recordRound(ctx context.Context, p tcc.RoundParams) error {
	stmts, cas := s.roundStatements(p)
	affected, err := s.write(ctx, stmts...)
	if err != nil {
		return s.interpret("record round", err)
	}
	n := affected[cas]
	if n == 0 {
		return fmt.Errorf("record round of %s at version %d: %w", p.GID, p.Version, tcc.ErrConflict)
	}
	return nil
}

// roundStatements returns the statements of one delivery round and the
// index of the record's compare-and-set among them: the branch facts, the
// history's facts (attempts, conflicts, the trimming of old attempts), the
// compare-and-set, and the event it writes if it matches (history.go).
func (s *Store) roundStatements(p tcc.RoundParams) ([]stmt, int) {
	d := s.d()
	decided, branchDone := p.Outcome.DecidedState(), p.Outcome.BranchDone()
	now := micros(p.Now)
	var stmts []stmt
	if len(p.Done) > 0 {
		// The successful calls' latency and instance go with the branch
		// (its history event, history.go).
		latency := callLatencies(p)
		var lat strings.Builder
		args := make([]any, 0, 6+3*len(p.Done))
		args = append(args, string(branchDone), now, p.Instance)
		for _, id := range p.Done {
			lat.WriteString(" WHEN ? THEN " + d.bigint())
			args = append(args, id, latency[id])
		}
		args = append(args, p.GID, string(tcc.BranchRegistered))
		for _, id := range p.Done {
			args = append(args, id)
		}
		stmts = append(stmts, stmt{`UPDATE branch_record SET state = ?, attempts = attempts + 1, last_error = '', updated_us = ?,
			done_instance = ?, done_latency_us = CASE branch_id` + lat.String() + ` ELSE 0 END
			WHERE gid = ? AND state = ? AND branch_id IN (` + placeholders(len(p.Done)) + `)`, args})
	}
	for _, f := range p.Failed {
		stmts = append(stmts, stmt{`UPDATE branch_record SET attempts = attempts + 1, last_error = ?, updated_us = ?
			WHERE gid = ? AND branch_id = ? AND state = ?`,
			[]any{f.Err, now, p.GID, f.BranchID, string(tcc.BranchRegistered)}})
	}
	for _, f := range p.Conflicts {
		stmts = append(stmts, stmt{`UPDATE branch_record SET attempts = attempts + 1, last_error = ?, conflict = ?, updated_us = ?
			WHERE gid = ? AND branch_id = ? AND state = ?`,
			[]any{f.Err, true, now, p.GID, f.BranchID, string(tcc.BranchRegistered)}})
	}
	if facts := roundFacts(p); len(facts) > 0 {
		stmts = append(stmts, eventsInsert(facts))
	}
	stmts = append(stmts, trimAttempts(p)...)
	var cas stmt
	if p.Finish {
		cas = recordFinish(d, p)
	} else {
		cas = stmt{`UPDATE transaction_record` + d.pk() + `
			SET version = version + 1, attempts = attempts + 1, lease_owner = '', next_attempt_us = ?,
			    last_error = ?, needs_attention = (needs_attention OR ?), updated_us = ?
			WHERE gid = ? AND version = ? AND state = ?`,
			[]any{micros(p.NextAttemptAt), p.LastError, p.NeedsAttention, now, p.GID, p.Version, string(decided)}}
	}
	at := len(stmts)
	return append(stmts, casWithEvent(d, cas, p)...), at
}

// recordFinish is a finishing round's compare-and-set: the record at the
// round's version, decided, with no branch left REGISTERED, becomes final.
func recordFinish(d dialect, p tcc.RoundParams) stmt {
	now := micros(p.Now)
	// next_attempt_us of a final record is its finish time, from which
	// retention is counted.
	return stmt{`UPDATE transaction_record` + d.pk() + `
		SET state = ?, version = version + 1, attempts = attempts + 1, lease_owner = '', next_attempt_us = ?,
		    updated_us = ?
		WHERE gid = ? AND version = ? AND state = ?
		  AND NOT EXISTS (SELECT 1 FROM branch_record WHERE gid = ? AND state = ?)`,
		[]any{string(p.Outcome.FinalState()), now, now, p.GID, p.Version, string(p.Outcome.DecidedState()), p.GID, string(tcc.BranchRegistered)}}
}

// Claim implements tcc.Store.
//
// model: claim
func (s *Store) Claim(ctx context.Context, p tcc.ClaimParams) (*tcc.Transaction, error) {
	n, err := s.exec(ctx, s.sql, `UPDATE transaction_record`+s.pk()+`
		SET version = version + 1, lease_owner = ?, next_attempt_us = ?, updated_us = ?
		WHERE gid = ? AND version = ? AND next_attempt_us <= ? AND state IN (?, ?, ?)`,
		p.Owner, micros(p.LeaseUntil), micros(p.Now), p.GID, p.Version, micros(p.Now),
		string(tcc.StateTrying), string(tcc.StateCommitting), string(tcc.StateAborting))
	if err != nil {
		return nil, s.interpret("claim", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("claim %s at version %d: %w", p.GID, p.Version, tcc.ErrConflict)
	}
	return s.load(ctx, s.sql, p.GID)
}

// getTransaction reads a record with its branches through db, which may
// be a gorm transaction: the same joined read as GetTransaction.
func (s *Store) getTransaction(db *gorm.DB, gid string) (*tcc.Transaction, error) {
	return s.load(db.Statement.Context, db.Statement.ConnPool, gid)
}

// scanRecord reads one row of recordColumns.
func (s *Store) scanRecord(rows *sql.Rows) (*tcc.Transaction, error) {
	var r recordRow
	if err := rows.Scan(r.dest()...); err != nil {
		return nil, s.interpret("scan transaction", err)
	}
	return r.record()
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

func (s *Store) pk() string        { return s.d().pk() }
func (s *Store) forUpdate() string { return s.d().forUpdate() }

// interpret translates driver errors into tcc errors at the boundary; SQL
// text never reaches a caller.
func (s *Store) interpret(op string, err error) error {
	if err == nil {
		return nil
	}
	var (
		myErr *gomysql.MySQLError
		pgErr *pgconn.PgError
		sqErr *sqlite.Error
		st    *tcc.StateError
	)
	switch {
	case errors.Is(err, tcc.ErrNotFound), errors.Is(err, tcc.ErrTooManyBranches), errors.As(err, &st):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case database.IsDuplicateKey(err):
		return fmt.Errorf("%s: %w", op, tcc.ErrDuplicate)
	case errors.As(err, &myErr):
		// Deadlocks and lock wait timeouts (database.IsRetryable) applied
		// nothing either: all are unavailable, to be retried.
		return fmt.Errorf("%s: mysql error %d: %w", op, myErr.Number, tcc.ErrUnavailable)
	case errors.As(err, &pgErr):
		// Serialization failures and deadlocks (database.IsRetryable)
		// applied nothing either.
		return fmt.Errorf("%s: postgres error %s: %w", op, pgErr.Code, tcc.ErrUnavailable)
	case errors.As(err, &sqErr):
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
