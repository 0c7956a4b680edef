package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// One round trip for a short write transaction (PostgreSQL).
//
// pgx sends a batch as one pipeline: every statement's Parse, Bind,
// Describe and Execute messages, then a single Sync, written together; the
// results are read afterwards. PostgreSQL runs the messages before a Sync
// as one implicit transaction: the statements run in order, the first
// error skips the rest and rolls back all of them, and the Sync commits
// them (durably, with synchronous_commit on) before the server answers. So
// the batch is "BEGIN; s1; s2; COMMIT" in one round trip, with no BEGIN or
// COMMIT sent, and a failed batch leaves no transaction open on the
// connection.
//
// The alternatives cost more: conn.BeginTx, then SendBatch, then Commit is
// three round trips; pgx's Batch.BeginTx saves the first (two); queueing
// BEGIN and COMMIT in the batch is one, but after an error the explicit
// transaction stays open, aborted, until a ROLLBACK (another round trip, or
// a discarded connection).
//
// The pgx connection is reached through database/sql's Conn.Raw, so the
// pipeline uses the store's pool. Each statement's affected count comes
// from its command tag (for a data-modifying WITH, the rows of its INSERT;
// see dialect.thenInsert).

// pipeline runs stmts in one implicit transaction in one round trip and
// returns the rows each statement affected.
func (s *Store) pipeline(ctx context.Context, stmts ...stmt) ([]int64, error) {
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(stmts))}
	for _, st := range stmts {
		b.Queue(s.bind(st.query), s.args(st.args)...)
	}
	s.roundTrips.Add(1)
	conn, err := s.sql.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	affected := make([]int64, len(stmts))
	var runErr error
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			runErr = fmt.Errorf("sqlstore: driver connection %T is not pgx's", dc)
			return runErr
		}
		pc := sc.Conn()
		br := pc.SendBatch(ctx, b)
		for i := range stmts {
			tag, err := br.Exec()
			if err != nil {
				runErr = err
				break
			}
			affected[i] = tag.RowsAffected()
		}
		if err := br.Close(); err != nil && runErr == nil {
			runErr = err
		}
		if runErr != nil && (pc.IsClosed() || pc.PgConn().TxStatus() != 'I') {
			// Cut off mid-pipeline (a cancelled context, a lost
			// connection): never hand the connection back.
			return errors.Join(runErr, driver.ErrBadConn)
		}
		return runErr
	})
	if runErr != nil {
		return nil, runErr
	}
	if err != nil {
		return nil, err
	}
	return affected, nil
}
