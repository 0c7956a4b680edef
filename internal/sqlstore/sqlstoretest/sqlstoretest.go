// Package sqlstoretest helps tests that need many transaction records in
// a real database: bulk seeding (a million rows in seconds, bypassing the
// store's one-row-at-a-time API) and counting by state.
package sqlstoretest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/tcc"
)

// GID is the i-th gid Seed writes for prefix.
func GID(prefix string, i int) string { return fmt.Sprintf("%s-%07d", prefix, i) }

// Kind says what Seed writes.
type Kind int

const (
	// Due: COMMITTING two-branch transactions whose lease expired a
	// minute ago, as a crashed coordinator leaves them.
	Due Kind = iota
	// Finished: COMMITTED two-branch transactions (the bulk of a
	// table in production), which the due scan must not pay for.
	Finished
)

// Seed bulk-inserts n transactions with two branches each (gids
// GID(prefix, 0...n-1)), 1,000 rows per statement. It bypasses the store's
// one-row-at-a-time API so that a million rows take seconds, and writes the
// same columns the store does.
func Seed(tb testing.TB, s *sqlstore.Store, prefix string, n int, kind Kind, participant string) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	us := now.UnixMicro()
	past := now.Add(-time.Minute).UnixMicro()
	state, branchState, next := "COMMITTING", "REGISTERED", past
	if kind == Finished {
		state, branchState, next = "COMMITTED", "CONFIRMED", past
	}
	// The payload "{}" as a blob literal.
	payload := "X'7b7d'"
	if s.Dialect() == database.Postgres {
		payload = `'\x7b7d'::bytea`
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
			gid := GID(prefix, i)
			fmt.Fprintf(&tx, "('%s','%s',2,60000,%d,%d,%d,'crashed',0,2,'','',false,false,'{}',%d,%d)",
				gid, state, past, past, next, past, us)
			for j, b := range []string{"accounts", "inventory"} {
				if j > 0 {
					br.WriteByte(',')
				}
				fmt.Fprintf(&br, "('%s','%s','%s',%s,'%s','%s',0,'',%d,%d)",
					gid, b, participant, payload, tcc.Digest([]byte("{}")), branchState, past, us)
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

// CountState counts the records in state.
func CountState(tb testing.TB, s *sqlstore.Store, state tcc.State) int {
	tb.Helper()
	var n int64
	if err := s.DB().Raw("SELECT COUNT(*) FROM transaction_record WHERE state = ?", string(state)).Scan(&n).Error; err != nil {
		tb.Fatal(err)
	}
	return int(n)
}
