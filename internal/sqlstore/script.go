package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/settle-tcc/settle/internal/database"
)

// One round trip for a short write transaction (MySQL).
//
// A write transaction of a few statements costs a round trip for each of
// them plus BEGIN and COMMIT. On MySQL the store instead sends
// "BEGIN; s1; s2; COMMIT" as one multi-statement query (the DSN enables
// multiStatements; parameters are interpolated by the driver with
// escaping, as for every other statement). The server runs the statements
// in order and stops at the first error, so a failed script leaves its
// transaction open: the connection is then discarded (the server rolls
// the transaction back when it closes), never returned to the pool.
// SQLite runs in-process and uses ordinary transactions.

// write runs stmts in one database transaction and returns the rows each
// affected: one script on MySQL, one pipeline on PostgreSQL
// (pipeline.go), the statements one by one on SQLite.
func (s *Store) write(ctx context.Context, stmts ...stmt) ([]int64, error) {
	switch s.dialect {
	case database.MySQL:
		return s.script(ctx, stmts...)
	case database.Postgres:
		return s.pipeline(ctx, stmts...)
	}
	dbtx, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = dbtx.Rollback() }()
	affected := make([]int64, len(stmts))
	for i, st := range stmts {
		if affected[i], err = s.exec(ctx, dbtx, st.query, st.args...); err != nil {
			return nil, err
		}
	}
	if err := s.commit(dbtx); err != nil {
		return nil, err
	}
	return affected, nil
}

// stmt is one statement of a script.
type stmt struct {
	query string
	args  []any
}

// script runs stmts in one transaction in one round trip and returns the
// rows each statement affected.
func (s *Store) script(ctx context.Context, stmts ...stmt) ([]int64, error) {
	size, nargs := len("BEGIN;\nCOMMIT"), 0
	for _, st := range stmts {
		size += len(";\n") + len(st.query)
		nargs += len(st.args)
	}
	var sb strings.Builder
	sb.Grow(size)
	sb.WriteString("BEGIN")
	args := make([]driver.NamedValue, 0, nargs)
	for _, st := range stmts {
		sb.WriteString(";\n")
		sb.WriteString(st.query)
		for _, a := range s.args(st.args) {
			v, err := driver.DefaultParameterConverter.ConvertValue(a)
			if err != nil {
				return nil, fmt.Errorf("sqlstore: script argument %T: %w", a, err)
			}
			args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: v})
		}
	}
	sb.WriteString(";\nCOMMIT")
	s.roundTrips.Add(1)
	conn, err := s.sql.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	var affected []int64
	var runErr error
	err = conn.Raw(func(dc any) error {
		ex, ok := dc.(driver.ExecerContext)
		if !ok {
			runErr = fmt.Errorf("sqlstore: driver connection %T cannot run a script", dc)
			return runErr
		}
		res, err := ex.ExecContext(ctx, sb.String(), args)
		if err != nil {
			runErr = err
			// The transaction may be open on this connection: drop it.
			return errors.Join(err, driver.ErrBadConn)
		}
		r, ok := res.(gomysql.Result)
		if !ok {
			runErr = fmt.Errorf("sqlstore: driver result %T has no per-statement counts", res)
			return errors.Join(runErr, driver.ErrBadConn)
		}
		affected = r.AllRowsAffected()
		return nil
	})
	if runErr != nil {
		return nil, runErr
	}
	if err != nil {
		return nil, err
	}
	// BEGIN and COMMIT come first and last.
	if len(affected) != len(stmts)+2 {
		return nil, fmt.Errorf("sqlstore: script of %d statements reported %d results", len(stmts)+2, len(affected))
	}
	return affected[1 : len(affected)-1], nil
}
