package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/tcc"
)

// The overview (tcc.Store.Overview): three grouped SELECTs in portable SQL
// (COUNT, SUM, MIN, CASE, GROUP BY on an output alias), with the times as
// integer microseconds so that a bucket is integer arithmetic; only the
// integer division differs by dialect (bucketOf).
//
//   - per state: the count, the flagged ones and the oldest creation time,
//     one scan of transaction_record;
//   - the decisions per bucket: records by decided_us (the DECIDED event
//     lives in the record, history.go);
//   - per bucket the history rows that are a decision (a tombstone's) or
//     an attempt that did not succeed (a success is stored with its
//     branch, never as a row, but the filter on the result keeps the
//     query right if one ever is).
//
// None has an index on the time it filters by: the overview reads the
// records and the history rows once (the console polls it every few
// seconds; retention bounds both tables).

const overviewStatesQuery = `SELECT state, COUNT(*), SUM(CASE WHEN needs_attention = ? THEN 1 ELSE 0 END), MIN(created_us)
	FROM transaction_record GROUP BY state`

// bucketOf is the SQL of the bucket number of a microsecond column, with
// two parameters: the series' start and the bucket's length (both
// microseconds). The column is at or after the start, so the quotient is
// the same whether the division truncates or floors.
func (s *Store) bucketOf(column string) string {
	if s.dialect == database.MySQL {
		return "(" + column + " - ?) DIV ?" // MySQL's / is decimal division
	}
	return "(" + column + " - ?) / ?" // integer division of integers: SQLite, PostgreSQL
}

// Overview implements tcc.Store.
func (s *Store) Overview(ctx context.Context, p tcc.OverviewParams) (*tcc.Overview, error) {
	if p.Buckets <= 0 || p.Bucket <= 0 {
		return nil, fmt.Errorf("overview: %d buckets of %s", p.Buckets, p.Bucket)
	}
	from, width := micros(p.Since), p.Bucket.Microseconds()
	to := from + width*int64(p.Buckets)
	o := &tcc.Overview{Since: p.Since, Bucket: p.Bucket,
		Decisions: make([]int64, p.Buckets), FailedCalls: make([]int64, p.Buckets)}

	states := map[tcc.State]tcc.StateSummary{}
	err := s.query(ctx, func(rows *sql.Rows) error {
		var st string
		var sum tcc.StateSummary
		var oldest int64
		if err := rows.Scan(&st, &sum.Count, &sum.NeedsAttention, &oldest); err != nil {
			return err
		}
		sum.State, sum.OldestCreated = tcc.State(st), fromMicros(oldest)
		states[sum.State] = sum
		return nil
	}, overviewStatesQuery, true)
	if err != nil {
		return nil, s.interpret("overview", err)
	}
	for _, st := range tcc.LifecycleOrder {
		if sum, ok := states[st]; ok {
			o.States = append(o.States, sum)
		}
	}

	count := func(series []int64) func(rows *sql.Rows) error {
		return func(rows *sql.Rows) error {
			var b, n int64
			if err := rows.Scan(&b, &n); err != nil {
				return err
			}
			if b >= 0 && b < int64(len(series)) {
				series[b] += n
			}
			return nil
		}
	}
	err = s.query(ctx, count(o.Decisions),
		`SELECT `+s.bucketOf("decided_us")+` AS b, COUNT(*) FROM transaction_record
		WHERE decided_us >= ? AND decided_us < ? GROUP BY b`,
		from, width, from, to)
	if err != nil {
		return nil, s.interpret("overview", err)
	}
	err = s.query(ctx, func(rows *sql.Rows) error {
		var kind string
		var b, n int64
		if err := rows.Scan(&kind, &b, &n); err != nil {
			return err
		}
		series := o.FailedCalls
		if tcc.EventKind(kind) == tcc.EventDecided {
			series = o.Decisions
		}
		if b >= 0 && b < int64(len(series)) {
			series[b] += n
		}
		return nil
	}, `SELECT kind, `+s.bucketOf("at_us")+` AS b, COUNT(*) FROM transaction_event
		WHERE at_us >= ? AND at_us < ? AND (kind = ? OR (kind = ? AND cause IN (?, ?)))
		GROUP BY kind, b`,
		from, width, from, to, string(tcc.EventDecided), string(tcc.EventAttempt),
		string(tcc.ResultFailed), string(tcc.ResultUnknown))
	if err != nil {
		return nil, s.interpret("overview", err)
	}
	return o, nil
}

// query runs a SELECT and calls scan for each row.
func (s *Store) query(ctx context.Context, scan func(*sql.Rows) error, q string, args ...any) error {
	rows, err := s.sql.QueryContext(ctx, s.bind(q), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
