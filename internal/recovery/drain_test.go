package recovery_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/sqlstore/sqlstoretest"
	"github.com/settle-tcc/settle/internal/tcc"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

func openStore(tb testing.TB, spec string) *sqlstore.Store {
	tb.Helper()
	s, err := sqlstore.Open(context.Background(), spec)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// TestDueScanReadsOnlyDueRows: the recovery scan must cost the same on a
// table of a million finished rows as on an empty one, so it has to reach
// the due rows through the (state, next_attempt_us) index. On MySQL this
// is checked on the real ListDue call, through the session's handler
// counters: rows read must be about the rows returned, not the table. On
// SQLite the query plan of the same statement must search that index; on
// PostgreSQL its executed plan must scan that index, in its order, and
// return the due rows only.
func TestDueScanReadsOnlyDueRows(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		s := openStore(t, spec)
		part := testparticipant.Start(t)
		const finished, due = 5000, 20
		sqlstoretest.Seed(t, s, "old", finished, sqlstoretest.Finished, part.Addr())
		sqlstoretest.Seed(t, s, "due", due, sqlstoretest.Due, part.Addr())
		ctx := context.Background()

		if s.Dialect() == database.SQLite {
			var plan []string
			rows, err := s.DB().Raw(`EXPLAIN QUERY PLAN SELECT gid, version FROM transaction_record
				WHERE state = ? AND next_attempt_us <= ? ORDER BY next_attempt_us LIMIT ?`, "COMMITTING", time.Now().UnixMicro(), 100).Rows()
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			_ = rows.Close()
			if p := strings.Join(plan, "; "); !strings.Contains(p, "idx_transaction_due") || strings.Contains(p, "TEMP B-TREE") {
				t.Fatalf("due scan plan %q: want a search of idx_transaction_due without a sort", p)
			}
		} else if s.Dialect() == database.Postgres {
			// The executed plan of the same statement: an index scan of
			// idx_transaction_due in its order (no sort), reading the due
			// rows only.
			var plan []string
			rows, err := s.DB().Raw(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT gid, version FROM transaction_record
				WHERE state = ? AND next_attempt_us <= ? ORDER BY next_attempt_us LIMIT ?`, "COMMITTING", time.Now().UnixMicro(), 100).Rows()
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, strings.TrimSpace(line))
			}
			_ = rows.Close()
			p := strings.Join(plan, "; ")
			if !strings.Contains(p, "Index Scan using idx_transaction_due") || strings.Contains(p, "Sort") ||
				!strings.Contains(p, fmt.Sprintf("(actual rows=%d ", due)) {
				t.Fatalf("due scan plan %q: want an index scan of idx_transaction_due returning %d rows, without a sort", p, due)
			}
			t.Logf("due scan plan: %s", p)
		} else {
			// One connection, so that SHOW SESSION STATUS sees the scan.
			sqlDB, err := s.DB().DB()
			if err != nil {
				t.Fatal(err)
			}
			sqlDB.SetMaxOpenConns(1)
			before := handlerReads(t, s)
			refs, err := s.ListDue(ctx, time.Now().UTC(), 100)
			if err != nil {
				t.Fatal(err)
			}
			read := handlerReads(t, s) - before
			if len(refs) != due {
				t.Fatalf("ListDue found %d, want %d", len(refs), due)
			}
			// Each state's range scan reads its due rows plus one row
			// past the end. A full scan would read the whole table.
			if read > 1000 {
				t.Fatalf("ListDue read %d rows to find %d among %d: the scan does not use the due index", read, due, finished+due)
			}
			t.Logf("ListDue read %d rows (handler counters, SHOW STATUS included) to return %d of %d", read, len(refs), finished+due)
		}

		// And the loop drains exactly the due ones.
		loop := newLoop(t, s, 16)
		drain(t, loop, 10)
		if n := sqlstoretest.CountState(t, s, tcc.StateCommitted); n != finished+due {
			t.Fatalf("%d COMMITTED after the drain, want %d", n, finished+due)
		}
		for i := range due {
			if n := part.Count("Confirm", sqlstoretest.GID("due", i), "accounts"); n != 1 {
				t.Fatalf("%s confirmed %d times, want 1", sqlstoretest.GID("due", i), n)
			}
		}
	})
}

// handlerReads sums the session's Handler_read_* counters (rows read by
// the storage engine through any access path).
func handlerReads(t *testing.T, s *sqlstore.Store) int64 {
	t.Helper()
	rows, err := s.DB().Raw(`SHOW SESSION STATUS LIKE 'Handler_read%'`).Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var total int64
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		if name == "Handler_read_key" || name == "Handler_read_next" || name == "Handler_read_rnd_next" || name == "Handler_read_prev" {
			n, _ := strconv.ParseInt(value, 10, 64)
			total += n
		}
	}
	return total
}

// BenchmarkDrainBacklog measures how fast one coordinator instance's
// recovery loop drains a backlog of due two-branch transactions (a
// crashed instance's leftovers, or an outage's) against an
// always-succeeding participant on loopback. Each branch is confirmed over
// gRPC and each round recorded with its compare-and-set.
//
//	SETTLE_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test' \
//	  go test -run x -bench DrainBacklog -benchtime 1x ./internal/recovery
//
// SETTLE_BENCH_DRAIN_N sets the backlog (default 100000).
func BenchmarkDrainBacklog(b *testing.B) {
	n := envInt(b, "SETTLE_BENCH_DRAIN_N", 100000)
	for _, be := range dbtest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			s := openStore(b, be.New(b))
			part := testparticipant.Start(b)
			loop := newLoop(b, s, 64)
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				sqlstoretest.Seed(b, s, fmt.Sprintf("r%d", i), n, sqlstoretest.Due, part.Addr())
				start := time.Now()
				drain(b, loop, n) // bounded: at least one row per pass
				elapsed += time.Since(start)
			}
			if got := sqlstoretest.CountState(b, s, tcc.StateCommitted); got != n*b.N {
				b.Fatalf("%d COMMITTED, want %d", got, n*b.N)
			}
			total := float64(n * b.N)
			b.ReportMetric(total/elapsed.Seconds(), "tx/s")
			b.ReportMetric(float64(elapsed.Microseconds())/total, "µs/tx")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkDrainByTableSize drains the same backlog (SETTLE_BENCH_DRAIN_N,
// default 5000) from a table that already holds 10,000, 100,000 and
// 1,000,000 finished transactions (SETTLE_BENCH_TABLE_SIZES to change):
// the cost per drained transaction must not grow with the table.
//
//	go test -run x -bench DrainByTableSize -benchtime 1x -timeout 1h ./internal/recovery
func BenchmarkDrainByTableSize(b *testing.B) {
	n := envInt(b, "SETTLE_BENCH_DRAIN_N", 5000)
	sizes := []int{10000, 100000, 1000000}
	if v := os.Getenv("SETTLE_BENCH_TABLE_SIZES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			x, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("SETTLE_BENCH_TABLE_SIZES: %v", err)
			}
			sizes = append(sizes, x)
		}
	}
	for _, be := range dbtest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			s := openStore(b, be.New(b))
			part := testparticipant.Start(b)
			loop := newLoop(b, s, 64)
			filled, round := 0, 0
			for _, size := range sizes {
				sqlstoretest.Seed(b, s, fmt.Sprintf("bg%d", size), size-filled, sqlstoretest.Finished, part.Addr())
				filled = size
				b.Run(fmt.Sprintf("rows=%d", size), func(b *testing.B) {
					var elapsed time.Duration
					for i := 0; i < b.N; i++ {
						round++
						sqlstoretest.Seed(b, s, fmt.Sprintf("due%d", round), n, sqlstoretest.Due, part.Addr())
						start := time.Now()
						drain(b, loop, n)
						elapsed += time.Since(start)
					}
					b.ReportMetric(float64(elapsed.Microseconds())/float64(n*b.N), "µs/tx")
					b.ReportMetric(0, "ns/op")
				})
			}
		})
	}
}

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
