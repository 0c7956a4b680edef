package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
)

// testOverview: the counts by state with the flagged ones and the oldest
// creation times, and the decisions and failed calls per bucket by the
// events' times (a tombstone's decision included, successes and events
// outside the series not counted).
func testOverview(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	since := t0.Truncate(time.Minute)
	p := tcc.OverviewParams{Since: since, Bucket: time.Minute, Buckets: 5}

	empty, err := s.Overview(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(empty.States) != 0 || !reflect.DeepEqual(empty.Decisions, make([]int64, 5)) || !reflect.DeepEqual(empty.FailedCalls, make([]int64, 5)) {
		t.Fatalf("empty store: %+v", empty)
	}

	insertAt := func(gid string, created time.Time, branches ...string) {
		t.Helper()
		tx := newTx(gid)
		tx.CreatedAt, tx.UpdatedAt = created, created
		for _, b := range branches {
			tx.Branches = append(tx.Branches, branch(gid, b))
		}
		if err := s.InsertTransaction(ctx, tx); err != nil {
			t.Fatalf("insert %s: %v", gid, err)
		}
	}
	decideAt := func(gid string, o tcc.Outcome, at time.Time) *tcc.Transaction {
		t.Helper()
		tx, won, err := s.Decide(ctx, tcc.DecideParams{GID: gid, Outcome: o, Owner: "c1", LeaseUntil: at.Add(time.Minute),
			Cause: tcc.CauseCommit, Now: at})
		if err != nil || !won {
			t.Fatalf("decide %s: %v %v", gid, won, err)
		}
		return tx
	}
	insertAt("trying-old", t0.Add(-2*time.Hour))
	insertAt("trying-new", t0)
	insertAt("stuck", t0.Add(-time.Hour), "a", "b")
	insertAt("done", t0.Add(-3*time.Hour), "a")
	insertAt("early", t0.Add(-4*time.Hour), "a")

	// stuck: decided in bucket 0; a round in bucket 1 with a success, an
	// unknown outcome and a flag; a round in bucket 3 with a definite
	// failure; a round after the series with another failure.
	d := decideAt("stuck", tcc.Commit, since.Add(10*time.Second))
	if err := s.RecordRound(ctx, tcc.RoundParams{GID: "stuck", Outcome: tcc.Commit, Version: d.Version, Done: []string{"a"},
		Failed: []tcc.BranchResult{{BranchID: "b", Err: "down"}}, NeedsAttention: true, Attention: "max attempts",
		NextAttemptAt: since, LastError: "down", Now: since.Add(70 * time.Second), Instance: "c1", KeepAttempts: 10,
		Calls: []tcc.CallRecord{
			{BranchID: "a", Attempt: 1, Result: tcc.ResultSuccess, Code: "OK"},
			{BranchID: "b", Attempt: 1, Result: tcc.ResultUnknown, Code: "Unavailable", Message: "down"},
		}}); err != nil {
		t.Fatal(err)
	}
	c, err := s.Claim(ctx, tcc.ClaimParams{GID: "stuck", Version: mustGet(t, s, "stuck").Version, Owner: "c1",
		LeaseUntil: since.Add(time.Hour), Now: since.Add(3 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for i, at := range []time.Time{since.Add(3*time.Minute + time.Second), since.Add(5 * time.Minute)} {
		if err := s.RecordRound(ctx, tcc.RoundParams{GID: "stuck", Outcome: tcc.Commit, Version: c.Version,
			Failed: []tcc.BranchResult{{BranchID: "b", Err: "refused"}}, NeedsAttention: true, NextAttemptAt: since,
			LastError: "refused", Now: at, Instance: "c1", KeepAttempts: 10,
			Calls: []tcc.CallRecord{{BranchID: "b", Attempt: 2 + i, Result: tcc.ResultFailed, Code: "InvalidArgument", Message: "refused"}}}); err != nil {
			t.Fatal(err)
		}
		c, err = s.Claim(ctx, tcc.ClaimParams{GID: "stuck", Version: mustGet(t, s, "stuck").Version, Owner: "c1",
			LeaseUntil: since.Add(2 * time.Hour), Now: since.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
	}
	// done: decided and finished in bucket 2 (its success is no failure).
	d = decideAt("done", tcc.Abort, since.Add(2*time.Minute))
	if err := s.RecordRound(ctx, tcc.RoundParams{GID: "done", Outcome: tcc.Abort, Version: d.Version, Done: []string{"a"},
		Finish: true, Now: since.Add(2*time.Minute + time.Second), Instance: "c1",
		Calls: []tcc.CallRecord{{BranchID: "a", Attempt: 1, Result: tcc.ResultSuccess, Code: "OK"}}}); err != nil {
		t.Fatal(err)
	}
	// early: decided before the series.
	decideAt("early", tcc.Abort, since.Add(-time.Second))
	// A tombstone recorded in bucket 4: a decision by check-back.
	tomb := &tcc.Transaction{GID: "tomb", State: tcc.StateAborted, Version: 1, Deadline: since.Add(4 * time.Minute),
		NextAttemptAt: since.Add(4 * time.Minute), AbortReason: "presumed abort", Tombstone: true,
		CreatedAt: since.Add(4 * time.Minute), UpdatedAt: since.Add(4 * time.Minute)}
	if err := s.InsertTransaction(ctx, tomb); err != nil {
		t.Fatal(err)
	}

	o, err := s.Overview(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	want := []tcc.StateSummary{
		{State: tcc.StateTrying, Count: 2, OldestCreated: t0.Add(-2 * time.Hour)},
		{State: tcc.StateCommitting, Count: 1, NeedsAttention: 1, OldestCreated: t0.Add(-time.Hour)},
		{State: tcc.StateAborting, Count: 1, OldestCreated: t0.Add(-4 * time.Hour)},
		{State: tcc.StateAborted, Count: 2, OldestCreated: t0.Add(-3 * time.Hour)},
	}
	if len(o.States) != len(want) {
		t.Fatalf("states: %+v, want %+v", o.States, want)
	}
	for i, w := range want {
		g := o.States[i]
		if g.State != w.State || g.Count != w.Count || g.NeedsAttention != w.NeedsAttention || !g.OldestCreated.Equal(w.OldestCreated) {
			t.Errorf("state %d: %+v, want %+v", i, g, w)
		}
	}
	if want := []int64{1, 0, 1, 0, 1}; !reflect.DeepEqual(o.Decisions, want) {
		t.Errorf("decisions %v, want %v", o.Decisions, want)
	}
	if want := []int64{0, 1, 0, 1, 0}; !reflect.DeepEqual(o.FailedCalls, want) {
		t.Errorf("failed calls %v, want %v", o.FailedCalls, want)
	}
	if !o.Since.Equal(since) || o.Bucket != time.Minute {
		t.Errorf("series at %v by %v", o.Since, o.Bucket)
	}
}
