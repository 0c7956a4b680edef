package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
)

// historyTests are the history's part of the contract (Run runs them).
var historyTests = []struct {
	name string
	fn   func(t *testing.T, s tcc.Store)
}{
	{"HistoryOrder", testHistoryOrder},
	{"HistoryOnlyWithTheChange", testHistoryOnlyWithChange},
	{"HistoryConcurrentWrites", testHistoryConcurrent},
	{"HistoryBounds", testHistoryBounds},
	{"HistoryPurge", testHistoryPurge},
	{"ListFilters", testListFilters},
}

func history(t *testing.T, s tcc.Store, gid string) []tcc.Event {
	t.Helper()
	events, err := s.History(context.Background(), gid)
	if err != nil {
		t.Fatalf("history of %s: %v", gid, err)
	}
	return events
}

func kinds(events []tcc.Event) []tcc.EventKind {
	out := make([]tcc.EventKind, len(events))
	for i, e := range events {
		out[i] = e.Kind
	}
	return out
}

func count(events []tcc.Event, k tcc.EventKind) int {
	n := 0
	for _, e := range events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// testHistoryOrder: a transaction's life, every kind of event, read back in
// the order written with its fields.
func testHistoryOrder(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	tx := newTx("g")
	tx.Branches = []tcc.Branch{branch("g", "a")}
	if err := s.InsertTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := s.AddBranch(ctx, tcc.AddBranchParams{Branch: branch("g", "b"), MaxBranches: 8, Now: t0.Add(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	d, won, err := s.Decide(ctx, tcc.DecideParams{GID: "g", Outcome: tcc.Abort, Owner: "c1", LeaseUntil: t0.Add(time.Minute),
		AbortReason: "out of stock", Cause: tcc.CauseRollback, Now: t0.Add(time.Second)})
	if err != nil || !won {
		t.Fatalf("decide: %v %v", won, err)
	}
	// Round 1: a cancelled, b unknown (unavailable); flags the transaction.
	if err := s.RecordRound(ctx, tcc.RoundParams{GID: "g", Outcome: tcc.Abort, Version: d.Version, Done: []string{"a"},
		Failed: []tcc.BranchResult{{BranchID: "b", Err: "Unavailable: down"}}, NeedsAttention: true, Attention: "max attempts",
		NextAttemptAt: t0.Add(time.Hour), LastError: "b: down", Now: t0.Add(2 * time.Second), Instance: "c1", KeepAttempts: 10,
		Calls: []tcc.CallRecord{
			{BranchID: "a", Attempt: 1, Result: tcc.ResultSuccess, Code: "OK", Latency: 1500 * time.Microsecond},
			{BranchID: "b", Attempt: 1, Result: tcc.ResultUnknown, Code: "Unavailable", Message: "Unavailable: down", Latency: 3 * time.Millisecond},
		}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RetryNow(ctx, tcc.RetryParams{GID: "g", Actor: "alice (operator)", Now: t0.Add(3 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveBranch(ctx, tcc.ResolveParams{GID: "g", BranchID: "b", State: tcc.BranchCancelled, Reason: "undone by hand",
		Actor: "alice (operator)", Now: t0.Add(4 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	cur := mustGet(t, s, "g")
	if err := s.RecordRound(ctx, tcc.RoundParams{GID: "g", Outcome: tcc.Abort, Version: cur.Version, Finish: true,
		Now: t0.Add(5 * time.Second), Instance: "c2"}); err != nil {
		t.Fatal(err)
	}

	events := history(t, s, "g")
	// Round 1's calls and flag share one time; a store may order them
	// either way, so they are checked as a set below.
	want := []tcc.EventKind{tcc.EventBegun, tcc.EventBranchRegistered, tcc.EventBranchRegistered, tcc.EventDecided,
		"round", "round", "round", tcc.EventRetryNow, tcc.EventResolved, tcc.EventFinished}
	got := kinds(events)
	var a, b, attn tcc.Event
	for i := 4; i < 7 && i < len(events); i++ {
		switch e := events[i]; {
		case e.Kind == tcc.EventAttempt && e.BranchID == "a":
			a, got[i] = e, "round"
		case e.Kind == tcc.EventAttempt && e.BranchID == "b":
			b, got[i] = e, "round"
		case e.Kind == tcc.EventNeedsAttention:
			attn, got[i] = e, "round"
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("kinds:\n got %v\nwant %v", kinds(events), want)
	}
	for _, e := range events {
		if e.GID != "g" {
			t.Fatalf("event of another gid: %+v", e)
		}
	}
	if e := events[0]; !e.At.Equal(t0) {
		t.Fatalf("begun at %v, want %v", e.At, t0)
	}
	if e := events[1]; e.BranchID != "a" || e.Participant != "127.0.0.1:7501" || !e.At.Equal(t0) {
		t.Fatalf("branch registered with Begin: %+v", e)
	}
	if e := events[2]; e.BranchID != "b" || !e.At.Equal(t0.Add(time.Millisecond)) {
		t.Fatalf("branch registered: %+v", e)
	}
	if e := events[3]; e.State != tcc.StateAborting || e.Cause != tcc.CauseRollback || e.Message != "out of stock" || e.Instance != "c1" {
		t.Fatalf("decided: %+v", e)
	}
	if a.BranchID != "a" || a.Result != tcc.ResultSuccess || a.Call != "cancel" || a.Attempt != 1 || a.Code != "OK" ||
		a.Latency != 1500*time.Microsecond || a.Instance != "c1" {
		t.Fatalf("attempt a: %+v", a)
	}
	if b.BranchID != "b" || b.Result != tcc.ResultUnknown || b.Code != "Unavailable" || b.Message != "Unavailable: down" ||
		b.Latency != 3*time.Millisecond {
		t.Fatalf("attempt b: %+v", b)
	}
	if attn.Message != "max attempts" {
		t.Fatalf("needs attention: %+v", attn)
	}
	if e := events[7]; e.Actor != "alice (operator)" || !e.At.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("retry now: %+v", e)
	}
	if e := events[8]; e.BranchID != "b" || e.BranchState != tcc.BranchCancelled || e.Message != "undone by hand" || e.Actor != "alice (operator)" {
		t.Fatalf("resolved: %+v", e)
	}
	if e := events[9]; e.State != tcc.StateAborted || !e.At.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("finished: %+v", e)
	}

	// A tombstone's history is its decision by check-back.
	tomb := &tcc.Transaction{GID: "tomb", State: tcc.StateAborted, Version: 1, Deadline: t0, NextAttemptAt: t0,
		AbortReason: "presumed abort", Tombstone: true, CreatedAt: t0, UpdatedAt: t0}
	if err := s.InsertTransaction(ctx, tomb); err != nil {
		t.Fatal(err)
	}
	te := history(t, s, "tomb")
	if len(te) != 1 || te[0].Kind != tcc.EventDecided || te[0].Cause != tcc.CauseCheckBack || te[0].State != tcc.StateAborted {
		t.Fatalf("tombstone history: %+v", te)
	}
	if unknown := history(t, s, "unknown"); len(unknown) != 0 {
		t.Fatalf("unknown gid has a history: %+v", unknown)
	}
}

// testHistoryOnlyWithChange: a refused change writes no event; facts of a
// stale round (attempts) are kept, but not the end it could not record.
func testHistoryOnlyWithChange(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	mustInsert(t, s, "g", "a")
	if err := s.InsertTransaction(ctx, newTx("g")); !errors.Is(err, tcc.ErrDuplicate) {
		t.Fatalf("duplicate insert: %v", err)
	}
	if err := s.AddBranch(ctx, tcc.AddBranchParams{Branch: branch("g", "a"), MaxBranches: 8, Now: t0}); !errors.Is(err, tcc.ErrDuplicate) {
		t.Fatalf("duplicate branch: %v", err)
	}
	if err := s.AddBranch(ctx, tcc.AddBranchParams{Branch: branch("g", "b"), MaxBranches: 1, Now: t0}); !errors.Is(err, tcc.ErrTooManyBranches) {
		t.Fatalf("over the limit: %v", err)
	}
	d, _ := decide(t, s, "g", tcc.Commit)
	if _, won := decide(t, s, "g", tcc.Abort); won {
		t.Fatal("decided twice")
	}
	if err := s.AddBranch(ctx, tcc.AddBranchParams{Branch: branch("g", "late"), MaxBranches: 8, Now: t0}); !errors.Is(err, tcc.ErrState) {
		t.Fatalf("register after the decision: %v", err)
	}
	// A round at an old version: its attempt is a fact and is kept; the
	// finish it could not record is not.
	if err := s.RecordRound(ctx, tcc.RoundParams{GID: "g", Outcome: tcc.Commit, Version: d.Version - 1, Done: []string{"a"}, Finish: true,
		Now: t0.Add(2 * time.Second), Calls: []tcc.CallRecord{{BranchID: "a", Attempt: 1, Result: tcc.ResultSuccess, Code: "OK"}}}); !errors.Is(err, tcc.ErrConflict) {
		t.Fatalf("stale round: %v", err)
	}
	if _, err := s.RetryNow(ctx, tcc.RetryParams{GID: "g", Actor: "bob", Now: t0.Add(2 * time.Second)}); err == nil {
		t.Fatal("retry now of a leased or finished transaction succeeded")
	}
	want := []tcc.EventKind{tcc.EventBegun, tcc.EventBranchRegistered, tcc.EventDecided, tcc.EventAttempt}
	if got := kinds(history(t, s, "g")); !reflect.DeepEqual(got, want) {
		t.Fatalf("kinds:\n got %v\nwant %v", got, want)
	}
}

// testHistoryConcurrent: Begins, registrations and decisions written
// together (stores that batch share their writes) each leave exactly
// their own events.
func testHistoryConcurrent(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	const n = 12
	errs := make(chan error, 4*n)
	run := func(f func(i int) error) {
		done := make(chan struct{})
		for i := 0; i < n; i++ {
			go func() {
				errs <- f(i)
				done <- struct{}{}
			}()
		}
		for i := 0; i < n; i++ {
			<-done
		}
		for len(errs) > 0 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	gid := func(i int) string { return fmt.Sprintf("c-%02d", i) }
	run(func(i int) error {
		tx := newTx(gid(i))
		tx.Branches = []tcc.Branch{branch(gid(i), "a")}
		return s.InsertTransaction(ctx, tx)
	})
	run(func(i int) error {
		return s.AddBranch(ctx, tcc.AddBranchParams{Branch: branch(gid(i), "b"), MaxBranches: 8, Now: t0})
	})
	params := make([]tcc.DecideParams, 0, 2*n)
	for i := 0; i < n; i++ {
		for _, o := range []tcc.Outcome{tcc.Commit, tcc.Abort} {
			params = append(params, tcc.DecideParams{GID: gid(i), Outcome: o, Owner: "c", LeaseUntil: t0.Add(time.Minute),
				Cause: tcc.CauseCommit, Now: t0})
		}
	}
	for _, r := range DecideAll(s, params) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for i := 0; i < n; i++ {
		events := history(t, s, gid(i))
		want := []tcc.EventKind{tcc.EventBegun, tcc.EventBranchRegistered, tcc.EventBranchRegistered, tcc.EventDecided}
		if got := kinds(events); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s kinds:\n got %v\nwant %v", gid(i), got, want)
		}
		if events[3].State != mustGet(t, s, gid(i)).State {
			t.Fatalf("%s: decided event %s, record %s", gid(i), events[3].State, mustGet(t, s, gid(i)).State)
		}
	}
}

// testHistoryBounds: of a branch's attempts the first and the last
// KeepAttempts are kept; every other event is kept; the dropped count is
// what NewHistory reports.
func testHistoryBounds(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	mustInsert(t, s, "g", "a", "b")
	decide(t, s, "g", tcc.Commit)
	const keep, rounds = 2, 9
	for i := 1; i <= rounds; i++ {
		cur := mustGet(t, s, "g")
		calls := []tcc.CallRecord{{BranchID: "a", Attempt: i, Result: tcc.ResultUnknown, Code: "Unavailable", Message: fmt.Sprint("try ", i)}}
		if i <= 3 {
			calls = append(calls, tcc.CallRecord{BranchID: "b", Attempt: i, Result: tcc.ResultFailed, Code: "InvalidArgument"})
		}
		p := tcc.RoundParams{GID: "g", Outcome: tcc.Commit, Version: cur.Version, NextAttemptAt: t0.Add(time.Hour),
			Failed: []tcc.BranchResult{{BranchID: "a", Err: "down"}}, Now: t0.Add(time.Duration(i) * time.Second),
			Calls: calls, KeepAttempts: keep}
		if i == 5 {
			p.NeedsAttention, p.Attention = true, "horizon"
		}
		if err := s.RecordRound(ctx, p); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	h := tcc.NewHistory(history(t, s, "g"))
	var attemptsA, attemptsB []int
	for _, e := range h.Events {
		switch {
		case e.Kind == tcc.EventAttempt && e.BranchID == "a":
			attemptsA = append(attemptsA, e.Attempt)
		case e.Kind == tcc.EventAttempt && e.BranchID == "b":
			attemptsB = append(attemptsB, e.Attempt)
		}
	}
	if want := []int{1, 2, 8, 9}; !reflect.DeepEqual(attemptsA, want) {
		t.Fatalf("attempts of a kept: %v, want %v", attemptsA, want)
	}
	if want := []int{1, 2, 3}; !reflect.DeepEqual(attemptsB, want) {
		t.Fatalf("attempts of b kept: %v, want %v (within the bound)", attemptsB, want)
	}
	if want := map[string]int{"a": rounds - 2*keep}; !reflect.DeepEqual(h.Dropped, want) {
		t.Fatalf("dropped: %v, want %v", h.Dropped, want)
	}
	if c := count(h.Events, tcc.EventNeedsAttention); c != 1 {
		t.Fatalf("needs-attention events: %d, want 1", c)
	}
	if c := count(h.Events, tcc.EventDecided) + count(h.Events, tcc.EventBegun) + count(h.Events, tcc.EventBranchRegistered); c != 4 {
		t.Fatalf("begun, registered and decided events: %d, want 4", c)
	}
	for i, e := range h.Events {
		if e.Seq != int64(i+1) {
			t.Fatalf("seq of event %d: %d", i, e.Seq)
		}
	}
}

// testHistoryPurge: the history goes with its transaction, and only then.
func testHistoryPurge(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	for _, gid := range []string{"old", "open"} {
		mustInsert(t, s, gid, "a")
		decide(t, s, gid, tcc.Commit)
	}
	cur := mustGet(t, s, "old")
	if err := s.RecordRound(ctx, tcc.RoundParams{GID: "old", Outcome: tcc.Commit, Version: cur.Version, Done: []string{"a"},
		Finish: true, Now: t0, Calls: []tcc.CallRecord{{BranchID: "a", Attempt: 1, Result: tcc.ResultSuccess}}}); err != nil {
		t.Fatal(err)
	}
	if n := len(history(t, s, "old")); n != 5 {
		t.Fatalf("history before the purge: %d events, want 5", n)
	}
	if n, err := s.Purge(ctx, tcc.PurgeParams{Before: t0.Add(time.Hour), TombstonesBefore: t0, Limit: 10}); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if e := history(t, s, "old"); len(e) != 0 {
		t.Fatalf("history of a purged transaction: %+v", e)
	}
	if n := len(history(t, s, "open")); n != 3 {
		t.Fatalf("history of an unfinished transaction after the purge: %d events, want 3", n)
	}
}

// testListFilters: age range, gid prefix, participant and label filters,
// alone and together, with paging.
func testListFilters(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	add := func(gid string, created time.Time, labels map[string]string, participant string) {
		tx := newTx(gid)
		tx.CreatedAt, tx.UpdatedAt, tx.Labels = created, created, labels
		b := branch(gid, "a")
		b.Participant = participant
		tx.Branches = []tcc.Branch{b}
		if err := s.InsertTransaction(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	add("order-1", t0, map[string]string{"shop": "eu", "tier": "gold"}, "10.0.0.1:7501")
	add("order-2", t0.Add(time.Hour), map[string]string{"shop": "eu-west"}, "10.0.0.2:7501")
	add("order_3", t0.Add(2*time.Hour), map[string]string{"x": "shop"}, "10.0.0.1:7501")
	add("refund-1", t0.Add(3*time.Hour), map[string]string{"shop": "eu", "50%": "a_b"}, "10.0.0.1:7501")
	list := func(p tcc.ListParams) []string {
		t.Helper()
		if p.Limit == 0 {
			p.Limit = 10
		}
		txs, err := s.ListTransactions(ctx, p)
		if err != nil {
			t.Fatalf("list %+v: %v", p, err)
		}
		out := []string{}
		for _, tx := range txs {
			out = append(out, tx.GID)
		}
		return out
	}
	cases := []struct {
		name string
		p    tcc.ListParams
		want []string
	}{
		{"prefix", tcc.ListParams{GIDPrefix: "order-"}, []string{"order-1", "order-2"}},
		{"prefix with LIKE wildcard", tcc.ListParams{GIDPrefix: "order_"}, []string{"order_3"}},
		{"prefix none", tcc.ListParams{GIDPrefix: "zzz"}, []string{}},
		{"participant", tcc.ListParams{Participant: "10.0.0.1:7501"}, []string{"order-1", "order_3", "refund-1"}},
		{"label key", tcc.ListParams{LabelKey: "shop"}, []string{"order-1", "order-2", "refund-1"}},
		{"label value", tcc.ListParams{LabelKey: "shop", LabelValue: "eu"}, []string{"order-1", "refund-1"}},
		{"label wildcards literal", tcc.ListParams{LabelKey: "50%", LabelValue: "a_b"}, []string{"refund-1"}},
		{"label wildcards literal miss", tcc.ListParams{LabelKey: "50%", LabelValue: "axb"}, []string{}},
		{"label second key", tcc.ListParams{LabelKey: "tier", LabelValue: "gold"}, []string{"order-1"}},
		{"label empty value", tcc.ListParams{LabelKey: "shop", LabelValueSet: true}, []string{}},
		{"age range", tcc.ListParams{CreatedAfter: t0.Add(time.Hour), CreatedBefore: t0.Add(3 * time.Hour)}, []string{"order-2", "order_3"}},
		{"together", tcc.ListParams{GIDPrefix: "order", Participant: "10.0.0.1:7501", LabelKey: "shop"}, []string{"order-1"}},
		{"page", tcc.ListParams{Participant: "10.0.0.1:7501", After: "order-1", Limit: 1}, []string{"order_3"}},
	}
	for _, c := range cases {
		if got := list(c.p); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}
