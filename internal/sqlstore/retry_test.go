package sqlstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/tcc"
)

// TestWriteIsAtomic: a write transaction whose second statement fails (a
// Begin whose two branches share an id: the record's INSERT succeeds, the
// branches' fails) leaves nothing behind, on every backend (on MySQL a
// script, on PostgreSQL a pipeline run as one implicit transaction).
func TestWriteIsAtomic(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		ctx := context.Background()
		a, b := openTwo(t, spec)
		if err := a.InsertTransaction(ctx, knownTx("twice", "p", "p")); !errors.Is(err, tcc.ErrDuplicate) {
			t.Fatalf("Begin with a repeated branch id: %v, want ErrDuplicate", err)
		}
		if _, err := b.GetTransaction(ctx, "twice"); !errors.Is(err, tcc.ErrNotFound) {
			t.Fatalf("the record of the failed write is there: %v", err)
		}
		// The connection is usable and the gid free.
		if err := a.InsertTransaction(ctx, knownTx("twice", "p", "q")); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDecideRetriesSerializationFailure provokes a real serialization
// failure (SQLSTATE 40001) on PostgreSQL and shows that Decide retries it
// as it retries a deadlock on MySQL. The store's sessions run at
// REPEATABLE READ (as every transaction on CockroachDB runs SERIALIZABLE);
// another session holds the record's row lock with an update; the
// decision's compare-and-set waits for it, and when that session commits,
// fails with 40001 ("could not serialize access due to concurrent
// update"). The decision is then run again and wins: three statements
// (the failed compare-and-set, the retried one, the read) instead of two.
func TestDecideRetriesSerializationFailure(t *testing.T) {
	spec := dbtest.NewPostgres(t)
	ctx := context.Background()
	admin := dbtest.Open(t, spec)
	var name string
	if err := admin.Raw("SELECT current_database()").Scan(&name).Error; err != nil {
		t.Fatal(err)
	}
	if err := admin.Exec("ALTER DATABASE " + name + " SET default_transaction_isolation = 'repeatable read'").Error; err != nil {
		t.Fatal(err)
	}
	a, b := openTwo(t, spec) // new sessions: REPEATABLE READ
	if err := a.InsertTransaction(ctx, knownTx("ser", "p")); err != nil {
		t.Fatal(err)
	}

	sqlDB, err := dbtest.Open(t, spec).DB()
	if err != nil {
		t.Fatal(err)
	}
	holder, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.ExecContext(ctx, `UPDATE transaction_record SET updated_us = updated_us + 1 WHERE gid = 'ser'`); err != nil {
		t.Fatal(err)
	}

	before := b.RoundTrips()
	type result struct {
		tx  *tcc.Transaction
		won bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		tx, won, err := decideAs(b, "B", "ser", tcc.Commit, time.Second) // b does not know the record: the plain path
		done <- result{tx, won, err}
	}()
	// Wait until the compare-and-set waits for the row lock.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting int
		if err := admin.Raw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE 'UPDATE transaction_record%'`).Scan(&waiting).Error; err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the decision never waited for the row lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || !r.won || r.tx.State != tcc.StateCommitting {
		t.Fatalf("decide after a serialization failure: won=%v err=%v tx=%+v", r.won, r.err, r.tx)
	}
	if n := b.RoundTrips() - before; n != 3 {
		t.Fatalf("the decision took %d statements, want 3 (the compare-and-set failing with 40001, run again, the read)", n)
	}
	wantStored(t, a, "Decide", r.tx)
}

// TestRoundStoresAnyErrorText: a participant's error message is stored
// whatever bytes it holds: a NUL byte (which PostgreSQL's text types
// refuse; stored there as U+FFFD) and invalid UTF-8 (which MySQL's
// utf8mb4 and PostgreSQL refuse; stored as U+FFFD). A refused write would
// be retried forever by the recovery loop.
func TestRoundStoresAnyErrorText(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		ctx := context.Background()
		a, b := openTwo(t, spec)
		msg := "refused\x00here \xff\xfe"
		if err := a.InsertTransaction(ctx, knownTx("text", "p")); err != nil {
			t.Fatal(err)
		}
		tx, won, err := decideAs(a, "A", "text", tcc.Commit, time.Second)
		if err != nil || !won {
			t.Fatalf("decide: won=%v err=%v", won, err)
		}
		err = a.RecordRound(ctx, tcc.RoundParams{GID: "text", Outcome: tcc.Commit, Version: tx.Version,
			Failed: []tcc.BranchResult{{BranchID: "p", Err: msg}}, NextAttemptAt: k0.Add(time.Minute), LastError: "p: " + msg,
			Calls: []tcc.CallRecord{{BranchID: "p", Attempt: 1, Result: tcc.ResultUnknown, Code: "Unknown", Message: msg}},
			Now:   k0.Add(2 * time.Second), KeepAttempts: 10})
		if err != nil {
			t.Fatalf("record a round whose error has a NUL byte: %v", err)
		}
		got, err := b.GetTransaction(ctx, "text")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got.LastError, "p: refused") || !strings.HasPrefix(got.Branches[0].LastError, "refused") {
			t.Fatalf("stored errors %q, %q", got.LastError, got.Branches[0].LastError)
		}
		events, err := b.History(ctx, "text")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range events {
			found = found || (e.Kind == tcc.EventAttempt && strings.HasPrefix(e.Message, "refused"))
		}
		if !found {
			t.Fatalf("the attempt is not in the history: %+v", events)
		}
	})
}
