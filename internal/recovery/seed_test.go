package recovery_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/recovery"
	"github.com/settle-tcc/settle/internal/server"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/tcc"
)

// seedKind says what seedRows writes.
type seedKind int

const (
	// seedDue: COMMITTING two-branch transactions whose lease expired a
	// minute ago, as a crashed coordinator leaves them.
	seedDue seedKind = iota
	// seedFinished: COMMITTED two-branch transactions (the bulk of a
	// table in production), which the due scan must not pay for.
	seedFinished
)

// seedRows bulk-inserts n transactions with two branches each (gids
// prefix-000000...), 1,000 rows per statement. It bypasses the store's
// one-row-at-a-time API so that a million rows take seconds, and writes the
// same columns the store does.
func seedRows(tb testing.TB, s *sqlstore.Store, prefix string, n int, kind seedKind, participant string) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	us := now.UnixMicro()
	past := now.Add(-time.Minute).UnixMicro()
	state, branchState, next := "COMMITTING", "REGISTERED", past
	if kind == seedFinished {
		state, branchState, next = "COMMITTED", "CONFIRMED", past
	}
	const batch = 1000
	var tx, br strings.Builder
	for start := 0; start < n; start += batch {
		tx.Reset()
		br.Reset()
		tx.WriteString(`INSERT INTO transaction_record (gid, state, version, timeout_ms, deadline_us, decided_us, next_attempt_us,
			lease_owner, attempts, branch_count, last_error, abort_reason, needs_attention, tombstone, labels, created_us, updated_us) VALUES `)
		br.WriteString(`INSERT INTO branch_record (gid, branch_id, participant, payload, payload_digest, state, attempts,
			last_error, created_us, updated_us) VALUES `)
		for i := start; i < min(start+batch, n); i++ {
			if i > start {
				tx.WriteByte(',')
				br.WriteByte(',')
			}
			gid := fmt.Sprintf("%s-%07d", prefix, i)
			fmt.Fprintf(&tx, "('%s','%s',2,60000,%d,%d,%d,'crashed',0,2,'','',false,false,'{}',%d,%d)",
				gid, state, past, past, next, past, us)
			for j, b := range []string{"accounts", "inventory"} {
				if j > 0 {
					br.WriteByte(',')
				}
				fmt.Fprintf(&br, "('%s','%s','%s',X'7b7d','%s','%s',0,'',%d,%d)",
					gid, b, participant, tcc.Digest([]byte("{}")), branchState, past, us)
			}
		}
		if err := s.DB().WithContext(ctx).Exec(tx.String()).Error; err != nil {
			tb.Fatalf("seed transactions: %v", err)
		}
		if err := s.DB().WithContext(ctx).Exec(br.String()).Error; err != nil {
			tb.Fatalf("seed branches: %v", err)
		}
	}
}

func countState(tb testing.TB, s *sqlstore.Store, state tcc.State) int {
	tb.Helper()
	var n int64
	if err := s.DB().Raw("SELECT COUNT(*) FROM transaction_record WHERE state = ?", string(state)).Scan(&n).Error; err != nil {
		tb.Fatal(err)
	}
	return int(n)
}

// newLoop returns a coordinator and a recovery loop over s, tuned to drain
// a backlog as fast as the database allows.
func newLoop(tb testing.TB, s *sqlstore.Store, concurrency int) *recovery.Loop {
	tb.Helper()
	parts := server.NewParticipants()
	tb.Cleanup(func() { _ = parts.Close() })
	coord, err := tcc.NewCoordinator(s, parts, tcc.Config{InstanceID: "drain"}, slog.New(slog.DiscardHandler), nil, tcc.Hooks{})
	if err != nil {
		tb.Fatal(err)
	}
	loop, err := recovery.New(s, coord, recovery.Config{Interval: time.Millisecond, BatchSize: 1000, Concurrency: concurrency, Rate: 1e6},
		slog.New(slog.DiscardHandler), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return loop
}

// drain runs recovery passes until a pass finds nothing due, and returns
// how many passes it took. Bounded: it fails after limit passes.
func drain(tb testing.TB, loop *recovery.Loop, limit int) int {
	tb.Helper()
	for pass := 1; pass <= limit; pass++ {
		n, err := loop.RunOnce(context.Background())
		if err != nil {
			tb.Fatalf("pass %d: %v", pass, err)
		}
		if n == 0 {
			return pass
		}
	}
	tb.Fatalf("still due work after %d passes", limit)
	return 0
}
