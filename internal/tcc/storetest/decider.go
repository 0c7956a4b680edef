package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
)

// deciderTests are the decider's part of the contract (Run runs them):
// the decider target is stored with the record, and Postpone reschedules
// a TRYING record whose decider could not answer.
var deciderTests = []struct {
	name string
	fn   func(t *testing.T, s tcc.Store)
}{
	{"DeciderRoundTrip", testDeciderRoundTrip},
	{"Postpone", testPostpone},
	{"RetryNowDecider", testRetryNowDecider},
}

const testDecider = "http://127.0.0.1:7600/settle"

func testDeciderRoundTrip(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	tx := newTx("with")
	tx.Decider = testDecider
	tx.Branches = []tcc.Branch{branch("with", "a")}
	if err := s.InsertTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, s, "without")
	if got := mustGet(t, s, "with"); got.Decider != testDecider {
		t.Fatalf("decider read back %q, want %q", got.Decider, testDecider)
	}
	if got := mustGet(t, s, "without"); got.Decider != "" {
		t.Fatalf("no decider read back as %q", got.Decider)
	}
	list, err := s.ListTransactions(ctx, tcc.ListParams{Limit: 10})
	if err != nil || len(list) != 2 || list[0].GID != "with" || list[0].Decider != testDecider || list[1].Decider != "" {
		t.Fatalf("list: %+v %v", list, err)
	}
	// A decision returns the record as stored, decider included.
	d, won := decide(t, s, "with", tcc.Commit)
	if !won || d.Decider != testDecider {
		t.Fatalf("decided record: won %v decider %q", won, d.Decider)
	}
}

func testPostpone(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	tx := newTx("g")
	tx.Decider = testDecider
	if err := s.InsertTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute)
	next := now.Add(2 * time.Second)
	if err := s.Postpone(ctx, tcc.PostponeParams{GID: "g", Version: 1, NextAttemptAt: next, LastError: "decider: Unavailable", Instance: "c1", Now: now}); err != nil {
		t.Fatalf("postpone: %v", err)
	}
	got := mustGet(t, s, "g")
	if got.State != tcc.StateTrying || got.Version != 2 || got.Attempts != 1 || !got.NextAttemptAt.Equal(next) ||
		got.LastError != "decider: Unavailable" || got.NeedsAttention || !got.UpdatedAt.Equal(now) {
		t.Fatalf("after postpone: %+v", got)
	}
	due, err := s.ListDue(ctx, now.Add(time.Second), 10)
	if err != nil || len(due) != 0 {
		t.Fatalf("postponed record due before its next attempt: %+v %v", due, err)
	}
	due, err = s.ListDue(ctx, next, 10)
	if err != nil || len(due) != 1 || due[0].Version != 2 || due[0].State != tcc.StateTrying {
		t.Fatalf("postponed record due at its next attempt: %+v %v", due, err)
	}
	// A stale version, an unknown gid: nothing written.
	if err := s.Postpone(ctx, tcc.PostponeParams{GID: "g", Version: 1, NextAttemptAt: next.Add(time.Hour), Now: now}); !errors.Is(err, tcc.ErrConflict) {
		t.Fatalf("postpone at a stale version: %v, want ErrConflict", err)
	}
	if err := s.Postpone(ctx, tcc.PostponeParams{GID: "nope", Version: 1, NextAttemptAt: next, Now: now}); !errors.Is(err, tcc.ErrConflict) {
		t.Fatalf("postpone of an unknown gid: %v, want ErrConflict", err)
	}
	// Flagged once, with its event; a later postpone keeps the flag.
	if err := s.Postpone(ctx, tcc.PostponeParams{GID: "g", Version: 2, NextAttemptAt: next, LastError: "e2",
		NeedsAttention: true, Attention: "decider unreachable", Instance: "c1", Now: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.Postpone(ctx, tcc.PostponeParams{GID: "g", Version: 3, NextAttemptAt: next, LastError: "e3", Instance: "c1", Now: now}); err != nil {
		t.Fatal(err)
	}
	got = mustGet(t, s, "g")
	if !got.NeedsAttention || got.Version != 4 || got.Attempts != 3 || got.LastError != "e3" {
		t.Fatalf("after flagging: %+v", got)
	}
	events, err := s.History(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	flagged := 0
	for _, e := range events {
		if e.Kind == tcc.EventNeedsAttention {
			flagged++
			if e.Message != "decider unreachable" || e.Instance != "c1" || !e.At.Equal(now) {
				t.Fatalf("attention event: %+v", e)
			}
		}
	}
	if flagged != 1 {
		t.Fatalf("%d attention events, want 1: %+v", flagged, events)
	}
	// Once decided, a postpone matches nothing.
	d, won := decide(t, s, "g", tcc.Commit)
	if !won || d.State != tcc.StateCommitting {
		t.Fatalf("decide after postpones: %+v %v", d, won)
	}
	if err := s.Postpone(ctx, tcc.PostponeParams{GID: "g", Version: d.Version, NextAttemptAt: next, Now: now}); !errors.Is(err, tcc.ErrConflict) {
		t.Fatalf("postpone of a decided record: %v, want ErrConflict", err)
	}
	if got := mustGet(t, s, "g"); got.State != tcc.StateCommitting || got.Version != d.Version {
		t.Fatalf("decided record changed by a refused postpone: %+v", got)
	}
}

// testRetryNowDecider: an operator can make a TRYING transaction with a
// decider due at once, but only past its deadline (before it, asking the
// decider would abort a transaction that is still running).
func testRetryNowDecider(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	tx := newTx("g")
	tx.Decider = testDecider
	if err := s.InsertTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, s, "plain")
	if _, err := s.RetryNow(ctx, tcc.RetryParams{GID: "g", Actor: "op", Now: tx.Deadline.Add(-time.Second)}); !errors.Is(err, tcc.ErrState) {
		t.Fatalf("retry before the deadline: %v, want ErrState", err)
	}
	past := tx.Deadline.Add(time.Hour)
	if _, err := s.RetryNow(ctx, tcc.RetryParams{GID: "plain", Actor: "op", Now: past}); !errors.Is(err, tcc.ErrState) {
		t.Fatalf("retry of a TRYING transaction without a decider: %v, want ErrState", err)
	}
	// Postponed far ahead, then retried now.
	if err := s.Postpone(ctx, tcc.PostponeParams{GID: "g", Version: 1, NextAttemptAt: past.Add(time.Hour), LastError: "down", Now: past}); err != nil {
		t.Fatal(err)
	}
	got, err := s.RetryNow(ctx, tcc.RetryParams{GID: "g", Actor: "op", Now: past})
	if err != nil || got.State != tcc.StateTrying || !got.NextAttemptAt.Equal(past) || got.Version != 3 {
		t.Fatalf("retry past the deadline: %+v %v", got, err)
	}
	due, err := s.ListDue(ctx, past, 10)
	found := false
	for _, r := range due {
		found = found || (r.GID == "g" && r.Version == 3)
	}
	if err != nil || !found {
		t.Fatalf("g not due after retry now: %+v %v", due, err)
	}
	events, err := s.History(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if last := events[len(events)-1]; last.Kind != tcc.EventRetryNow || last.Actor != "op" {
		t.Fatalf("last event %+v", last)
	}
}
