// Package storetest is the contract every tcc.Store implementation must
// pass. Implementations call Run from their own tests with a constructor
// that returns a fresh, empty store on a real database.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
)

// Run runs the contract against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) tcc.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s tcc.Store)
	}{
		{"InsertGetRoundTrip", testInsertGet},
		{"InsertDuplicate", testInsertDuplicate},
		{"InsertWithBranches", testInsertWithBranches},
		{"InsertWithBranchesConcurrent", testInsertWithBranchesConcurrent},
		{"GetUnknown", testGetUnknown},
		{"AddBranch", testAddBranch},
		{"AddBranchLimitsAndStates", testAddBranchRefusals},
		{"RegisterBranchReturnsRecord", testRegisterBranch},
		{"RegisterBranchConcurrent", testRegisterBranchConcurrent},
		{"RecordRoundManyBranches", testRecordRoundMany},
		{"ConcurrentLifecycles", testConcurrentLifecycles},
		{"DecideOnce", testDecideOnce},
		{"DecideConcurrent", testDecideConcurrent},
		{"DecideReturnsStoredRecord", testDecideReturnsStored},
		{"RecordRoundFinish", testRecordRoundFinish},
		{"RecordRoundReschedule", testRecordRoundReschedule},
		{"RecordRoundStaleVersion", testRecordRoundStale},
		{"ClaimDueOnly", testClaim},
		{"ClaimConcurrent", testClaimConcurrent},
		{"ListDue", testListDue},
		{"RecordRoundConflict", testRecordRoundConflict},
		{"RetryNow", testRetryNow},
		{"ResolveBranch", testResolveBranch},
		{"ListTransactions", testListTransactions},
		{"Purge", testPurge},
		{"Overview", testOverview},
	}
	tests = append(tests, historyTests...)
	tests = append(tests, deciderTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

// DecideResult is the answer of one Store.Decide.
type DecideResult struct {
	Tx  *tcc.Transaction
	Won bool
	Err error
}

// DecideAll runs the decisions at once, one goroutine each, and returns
// their answers in the order of params (stores that batch get them
// together).
func DecideAll(s tcc.Store, params []tcc.DecideParams) []DecideResult {
	results := make([]DecideResult, len(params))
	var wg sync.WaitGroup
	for i, p := range params {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx, won, err := s.Decide(context.Background(), p)
			results[i] = DecideResult{tx, won, err}
		}()
	}
	wg.Wait()
	return results
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)

func newTx(gid string) *tcc.Transaction {
	return &tcc.Transaction{
		GID: gid, State: tcc.StateTrying, Version: 1, Timeout: time.Minute,
		Deadline: t0.Add(time.Minute), NextAttemptAt: t0.Add(time.Minute),
		Labels: map[string]string{"order": "o-1", "note": "ünïcode"}, CreatedAt: t0, UpdatedAt: t0,
	}
}

func branch(gid, id string) tcc.Branch {
	p := []byte(`{"amount":` + id + `}`)
	return tcc.Branch{GID: gid, BranchID: id, Participant: "127.0.0.1:7501", Payload: p, PayloadDigest: tcc.Digest(p),
		State: tcc.BranchRegistered, CreatedAt: t0, UpdatedAt: t0}
}

func mustInsert(t *testing.T, s tcc.Store, gid string, branches ...string) {
	t.Helper()
	ctx := context.Background()
	if err := s.InsertTransaction(ctx, newTx(gid)); err != nil {
		t.Fatalf("insert %s: %v", gid, err)
	}
	for _, b := range branches {
		if err := s.AddBranch(ctx, tcc.AddBranchParams{Branch: branch(gid, b), MaxBranches: 64, Now: t0}); err != nil {
			t.Fatalf("add branch %s/%s: %v", gid, b, err)
		}
	}
}

func mustGet(t *testing.T, s tcc.Store, gid string) *tcc.Transaction {
	t.Helper()
	tx, err := s.GetTransaction(context.Background(), gid)
	if err != nil {
		t.Fatalf("get %s: %v", gid, err)
	}
	return tx
}

func decide(t *testing.T, s tcc.Store, gid string, o tcc.Outcome) (*tcc.Transaction, bool) {
	t.Helper()
	tx, won, err := s.Decide(context.Background(), tcc.DecideParams{GID: gid, Outcome: o, Owner: "c1",
		LeaseUntil: t0.Add(30 * time.Second), AbortReason: "why", Now: t0.Add(time.Second)})
	if err != nil {
		t.Fatalf("decide %s: %v", gid, err)
	}
	return tx, won
}

func testInsertGet(t *testing.T, s tcc.Store) {
	mustInsert(t, s, "g1", "b", "a")
	got := mustGet(t, s, "g1")
	want := newTx("g1")
	if got.State != tcc.StateTrying || got.Timeout != time.Minute || !got.Deadline.Equal(want.Deadline) ||
		!got.CreatedAt.Equal(t0) || got.Labels["note"] != "ünïcode" || len(got.Labels) != 2 {
		t.Fatalf("round trip: got %+v", got)
	}
	if got.Version != 3 {
		t.Errorf("version after insert and two branches = %d, want 3", got.Version)
	}
	if len(got.Branches) != 2 || got.Branches[0].BranchID != "a" || got.Branches[1].BranchID != "b" {
		t.Fatalf("branches not ordered by id: %+v", got.Branches)
	}
	b := got.Branches[0]
	if string(b.Payload) != `{"amount":a}` || b.PayloadDigest != tcc.Digest(b.Payload) || b.State != tcc.BranchRegistered || b.Participant != "127.0.0.1:7501" {
		t.Fatalf("branch round trip: %+v", b)
	}
}

func testInsertDuplicate(t *testing.T, s tcc.Store) {
	mustInsert(t, s, "dup")
	err := s.InsertTransaction(context.Background(), newTx("dup"))
	if !errors.Is(err, tcc.ErrDuplicate) {
		t.Fatalf("second insert: got %v, want ErrDuplicate", err)
	}
}

func testGetUnknown(t *testing.T, s tcc.Store) {
	_, err := s.GetTransaction(context.Background(), "nope")
	if !errors.Is(err, tcc.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func testAddBranch(t *testing.T, s tcc.Store) {
	mustInsert(t, s, "g", "a")
	err := s.AddBranch(context.Background(), tcc.AddBranchParams{Branch: branch("g", "a"), MaxBranches: 64, Now: t0})
	if !errors.Is(err, tcc.ErrDuplicate) {
		t.Fatalf("duplicate branch: got %v, want ErrDuplicate", err)
	}
	if got := mustGet(t, s, "g"); len(got.Branches) != 1 || got.Version != 2 {
		t.Fatalf("duplicate branch changed the record: version %d, %d branches", got.Version, len(got.Branches))
	}
}

func testAddBranchRefusals(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	mustInsert(t, s, "g", "a", "b")
	err := s.AddBranch(ctx, tcc.AddBranchParams{Branch: branch("g", "c"), MaxBranches: 2, Now: t0})
	if !errors.Is(err, tcc.ErrTooManyBranches) {
		t.Fatalf("over limit: got %v", err)
	}
	err = s.AddBranch(ctx, tcc.AddBranchParams{Branch: branch("none", "c"), MaxBranches: 2, Now: t0})
	if !errors.Is(err, tcc.ErrNotFound) {
		t.Fatalf("unknown gid: got %v", err)
	}
	decide(t, s, "g", tcc.Commit)
	err = s.AddBranch(ctx, tcc.AddBranchParams{Branch: branch("g", "c"), MaxBranches: 64, Now: t0})
	var se *tcc.StateError
	if !errors.As(err, &se) || se.Actual != tcc.StateCommitting {
		t.Fatalf("after decision: got %v, want StateError COMMITTING", err)
	}
	if got := mustGet(t, s, "g"); len(got.Branches) != 2 {
		t.Fatalf("refused branch was written: %d branches", len(got.Branches))
	}
}

func testRegisterBranch(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	mustInsert(t, s, "g", "b")
	tx, err := s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: branch("g", "a"), MaxBranches: 3, Now: t0})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if tx.State != tcc.StateTrying || tx.Version != 3 || len(tx.Branches) != 2 || tx.Branches[0].BranchID != "a" ||
		string(tx.Branches[0].Payload) != `{"amount":a}` || tx.Branches[0].State != tcc.BranchRegistered ||
		tx.Labels["order"] != "o-1" || !tx.Deadline.Equal(t0.Add(time.Minute)) {
		t.Fatalf("returned record: %+v", tx)
	}
	if got := mustGet(t, s, "g"); got.Version != tx.Version || len(got.Branches) != 2 {
		t.Fatalf("stored record differs from the returned one: %+v", got)
	}
	// Refusals return the record as it is, unchanged.
	tx, err = s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: branch("g", "a"), MaxBranches: 3, Now: t0})
	if !errors.Is(err, tcc.ErrDuplicate) || tx == nil || tx.Version != 3 || len(tx.Branches) != 2 {
		t.Fatalf("duplicate: got %+v, %v", tx, err)
	}
	mustRegister := func(id string) {
		t.Helper()
		if _, err := s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: branch("g", id), MaxBranches: 3, Now: t0}); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}
	mustRegister("c")
	tx, err = s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: branch("g", "d"), MaxBranches: 3, Now: t0})
	if !errors.Is(err, tcc.ErrTooManyBranches) || tx == nil || len(tx.Branches) != 3 {
		t.Fatalf("over limit: got %+v, %v", tx, err)
	}
	decide(t, s, "g", tcc.Abort)
	tx, err = s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: branch("g", "e"), MaxBranches: 64, Now: t0})
	var se *tcc.StateError
	if !errors.As(err, &se) || se.Actual != tcc.StateAborting || tx == nil || tx.State != tcc.StateAborting || len(tx.Branches) != 3 {
		t.Fatalf("after decision: got %+v, %v", tx, err)
	}
	if tx, err := s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: branch("none", "a"), MaxBranches: 64, Now: t0}); !errors.Is(err, tcc.ErrNotFound) || tx != nil {
		t.Fatalf("unknown gid: got %+v, %v", tx, err)
	}
}

// testRegisterBranchConcurrent registers branches of one transaction in
// parallel while it is decided: every registration that succeeded is in the
// decided record, and none is added after the decision.
func testRegisterBranchConcurrent(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	mustInsert(t, s, "g")
	const n = 16
	var wg sync.WaitGroup
	ok := make([]bool, n)
	var decided *tcc.Transaction
	for i := range n + 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == n {
				tx, won, err := s.Decide(ctx, tcc.DecideParams{GID: "g", Outcome: tcc.Commit, Owner: "c", LeaseUntil: t0, Now: t0})
				if err != nil || !won {
					t.Errorf("decide: %v %v", won, err)
					return
				}
				decided = tx
				return
			}
			for {
				_, err := s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: branch("g", fmt.Sprintf("b%02d", i)), MaxBranches: 64, Now: t0})
				if errors.Is(err, tcc.ErrUnavailable) { // deadlock victim: nothing applied
					continue
				}
				ok[i] = err == nil
				if err != nil && !errors.Is(err, tcc.ErrState) {
					t.Errorf("register %d: %v", i, err)
				}
				return
			}
		}()
	}
	wg.Wait()
	if decided == nil {
		return
	}
	in := map[string]bool{}
	for _, b := range decided.Branches {
		in[b.BranchID] = true
	}
	for i, yes := range ok {
		if id := fmt.Sprintf("b%02d", i); yes != in[id] {
			t.Errorf("branch %s: registered %v, in the decided record %v", id, yes, in[id])
		}
	}
	if got := mustGet(t, s, "g"); len(got.Branches) != len(decided.Branches) {
		t.Errorf("%d branches stored, %d in the decided record", len(got.Branches), len(decided.Branches))
	}
}

// testConcurrentLifecycles runs many whole transactions at once, so that
// stores that group concurrent writes (batches) are exercised: duplicate
// Begins, registrations, racing opposite decisions and finishing rounds
// each get their own correct result.
func testConcurrentLifecycles(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	const n = 24
	var dupWins sync.WaitGroup
	var inserted [4]int
	var mu sync.Mutex
	for i := range 4 {
		dupWins.Add(1)
		go func() {
			defer dupWins.Done()
			err := s.InsertTransaction(ctx, newTx("dup"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				inserted[i] = 1
			case !errors.Is(err, tcc.ErrDuplicate):
				t.Errorf("duplicate insert: %v", err)
			}
		}()
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gid := fmt.Sprintf("life-%02d", i)
			if err := s.InsertTransaction(ctx, newTx(gid)); err != nil {
				t.Errorf("insert %s: %v", gid, err)
				return
			}
			for _, b := range []string{"a", "b"} {
				tx, err := s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: branch(gid, b), MaxBranches: 64, Now: t0})
				if err != nil || tx.GID != gid || tx.Branches[len(tx.Branches)-1].BranchID != b {
					t.Errorf("register %s/%s: %v %+v", gid, b, err, tx)
					return
				}
			}
			// Two opposite decisions race; exactly one wins and both see it.
			type res struct {
				tx  *tcc.Transaction
				won bool
				err error
			}
			out := make([]res, 2)
			var dw sync.WaitGroup
			for j, o := range []tcc.Outcome{tcc.Commit, tcc.Abort} {
				dw.Add(1)
				go func() {
					defer dw.Done()
					tx, won, err := s.Decide(ctx, tcc.DecideParams{GID: gid, Outcome: o, Owner: "c", LeaseUntil: t0.Add(time.Minute), AbortReason: "race", Now: t0})
					out[j] = res{tx, won, err}
				}()
			}
			dw.Wait()
			if out[0].err != nil || out[1].err != nil || out[0].won == out[1].won || out[0].tx.State != out[1].tx.State {
				t.Errorf("decide %s: %+v / %+v", gid, out[0], out[1])
				return
			}
			w := out[0]
			if out[1].won {
				w = out[1]
			}
			if len(w.tx.Branches) != 2 {
				t.Errorf("decided %s with %d branches", gid, len(w.tx.Branches))
				return
			}
			o, _ := tcc.OutcomeOf(w.tx.State)
			err := s.RecordRound(ctx, tcc.RoundParams{GID: gid, Outcome: o, Version: w.tx.Version, Done: []string{"a", "b"}, Finish: true, Now: t0})
			if err != nil {
				t.Errorf("record round %s: %v", gid, err)
				return
			}
			// A stale repeat of the round is a conflict, not a success.
			err = s.RecordRound(ctx, tcc.RoundParams{GID: gid, Outcome: o, Version: w.tx.Version, Done: []string{"a", "b"}, Finish: true, Now: t0})
			if !errors.Is(err, tcc.ErrConflict) {
				t.Errorf("stale round %s: got %v, want ErrConflict", gid, err)
			}
		}()
	}
	wg.Wait()
	dupWins.Wait()
	if got := inserted[0] + inserted[1] + inserted[2] + inserted[3]; got != 1 {
		t.Errorf("%d of 4 duplicate inserts succeeded, want 1", got)
	}
	for i := range n {
		tx := mustGet(t, s, fmt.Sprintf("life-%02d", i))
		if !tx.State.Final() || len(tx.Branches) != 2 {
			t.Errorf("%s: %s with %d branches", tx.GID, tx.State, len(tx.Branches))
			continue
		}
		want := tcc.BranchConfirmed
		if tx.State == tcc.StateAborted {
			want = tcc.BranchCancelled
		}
		for _, b := range tx.Branches {
			if b.State != want || b.Attempts != 1 {
				t.Errorf("%s/%s: %s attempts %d", tx.GID, b.BranchID, b.State, b.Attempts)
			}
		}
	}
}

func testDecideOnce(t *testing.T, s tcc.Store) {
	mustInsert(t, s, "g", "a")
	tx, won := decide(t, s, "g", tcc.Abort)
	if !won || tx.State != tcc.StateAborting || tx.LeaseOwner != "c1" || tx.AbortReason != "why" || len(tx.Branches) != 1 {
		t.Fatalf("first decide: won=%v tx=%+v", won, tx)
	}
	for _, o := range []tcc.Outcome{tcc.Abort, tcc.Commit} {
		again, won := decide(t, s, "g", o)
		if won || again.State != tcc.StateAborting || again.Version != tx.Version {
			t.Fatalf("repeat decide %v: won=%v state=%s version %d (was %d)", o, won, again.State, again.Version, tx.Version)
		}
	}
	if _, _, err := s.Decide(context.Background(), tcc.DecideParams{GID: "missing", Outcome: tcc.Commit, Now: t0}); !errors.Is(err, tcc.ErrNotFound) {
		t.Fatalf("decide unknown: %v", err)
	}
}

// testDecideReturnsStored: the record Decide returns is exactly the one a
// read gives afterwards, however the transaction was written (branches at
// insert in any order, registered one by one, none) and whether the
// decisions come alone or together (stores may answer Decide from what
// they wrote instead of reading).
func testDecideReturnsStored(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	check := func(gid string, tx *tcc.Transaction, won bool) {
		t.Helper()
		if !won {
			t.Fatalf("%s: decision not won", gid)
		}
		if got := mustGet(t, s, gid); !reflect.DeepEqual(tx, got) {
			t.Fatalf("%s: Decide returned\n%+v\nbut the store holds\n%+v", gid, tx, got)
		}
	}
	insert := func(gid string, atBegin []string, registered ...string) {
		t.Helper()
		tx := newTx(gid)
		for _, id := range atBegin {
			tx.Branches = append(tx.Branches, branch(gid, id))
		}
		if err := s.InsertTransaction(ctx, tx); err != nil {
			t.Fatalf("insert %s: %v", gid, err)
		}
		for _, id := range registered {
			if _, err := s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: branch(gid, id), MaxBranches: 64, Now: t0.Add(time.Millisecond)}); err != nil {
				t.Fatalf("register %s/%s: %v", gid, id, err)
			}
		}
	}

	insert("at-begin", []string{"b", "a", "c"})
	tx, won := decide(t, s, "at-begin", tcc.Commit)
	check("at-begin", tx, won)
	insert("registered", nil, "y", "x")
	tx, won = decide(t, s, "registered", tcc.Abort)
	check("registered", tx, won)
	insert("mixed", []string{"m"}, "n")
	tx, won = decide(t, s, "mixed", tcc.Commit)
	check("mixed", tx, won)
	insert("empty", nil)
	tx, won = decide(t, s, "empty", tcc.Abort)
	check("empty", tx, won)

	const n = 20
	for i := 0; i < n; i++ {
		gid := fmt.Sprintf("many-%02d", i)
		if i%2 == 0 {
			insert(gid, []string{"a", "b"})
		} else {
			insert(gid, nil, "a")
		}
	}
	params := make([]tcc.DecideParams, n)
	for i := range params {
		o := tcc.Commit
		if i%3 == 0 {
			o = tcc.Abort
		}
		params[i] = tcc.DecideParams{GID: fmt.Sprintf("many-%02d", i), Outcome: o, Owner: "c1",
			LeaseUntil: t0.Add(time.Duration(30+i) * time.Second), AbortReason: "why", Now: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	results := DecideAll(s, params)
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("decide many-%02d: %v", i, r.Err)
		}
		check(fmt.Sprintf("many-%02d", i), r.Tx, r.Won)
	}
}

func testDecideConcurrent(t *testing.T, s tcc.Store) {
	for round := 0; round < 5; round++ {
		gid := fmt.Sprintf("race-%d", round)
		mustInsert(t, s, gid, "a", "b")
		params := make([]tcc.DecideParams, 10)
		for i := range params {
			o := tcc.Commit
			if i%2 == 1 {
				o = tcc.Abort
			}
			params[i] = tcc.DecideParams{GID: gid, Outcome: o, Owner: "c", LeaseUntil: t0, Now: t0}
		}
		winners := map[tcc.Outcome]int{}
		for i, r := range DecideAll(s, params) {
			if r.Err != nil {
				t.Fatalf("decide: %v", r.Err)
			}
			if r.Won {
				winners[params[i].Outcome]++
			}
		}
		total := winners[tcc.Commit] + winners[tcc.Abort]
		if total != 1 {
			t.Fatalf("%s: %d winners (%v), want exactly 1", gid, total, winners)
		}
		got := mustGet(t, s, gid)
		want := tcc.StateCommitting
		if winners[tcc.Abort] == 1 {
			want = tcc.StateAborting
		}
		if got.State != want {
			t.Fatalf("%s: state %s, winner says %s", gid, got.State, want)
		}
	}
}

func testRecordRoundFinish(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	mustInsert(t, s, "g", "a", "b")
	tx, _ := decide(t, s, "g", tcc.Commit)
	// Finishing with a branch still registered is refused.
	err := s.RecordRound(ctx, tcc.RoundParams{GID: "g", Outcome: tcc.Commit, Version: tx.Version, Done: []string{"a"}, Finish: true, Now: t0})
	if !errors.Is(err, tcc.ErrConflict) {
		t.Fatalf("finish with a branch pending: got %v, want ErrConflict", err)
	}
	err = s.RecordRound(ctx, tcc.RoundParams{GID: "g", Outcome: tcc.Commit, Version: tx.Version, Done: []string{"a", "b"}, Finish: true, Now: t0})
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	got := mustGet(t, s, "g")
	// A final record's next attempt time is its finish time (retention).
	if got.State != tcc.StateCommitted || got.LeaseOwner != "" || got.Attempts != 1 || !got.NextAttemptAt.Equal(t0) || !got.DecidedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("after finish: %+v", got)
	}
	for _, b := range got.Branches {
		if b.State != tcc.BranchConfirmed {
			t.Fatalf("branch %s: %s", b.BranchID, b.State)
		}
	}
	if b := got.Branches[0]; b.Attempts != 1 {
		t.Fatalf("branch a attempts %d, want 1 (the refused round's fact was kept, the repeat matched nothing)", b.Attempts)
	}
}

func testRecordRoundMany(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	ids := []string{"a", "b", "c", "d", "e"}
	mustInsert(t, s, "g", ids...)
	tx, _ := decide(t, s, "g", tcc.Commit)
	err := s.RecordRound(ctx, tcc.RoundParams{GID: "g", Outcome: tcc.Commit, Version: tx.Version,
		Done: []string{"a", "c", "e"}, Failed: []tcc.BranchResult{{BranchID: "b", Err: "boom"}},
		Conflicts: []tcc.BranchResult{{BranchID: "d", Err: "refused"}}, NextAttemptAt: t0.Add(time.Minute), LastError: "boom", Now: t0})
	if err != nil {
		t.Fatalf("record round: %v", err)
	}
	got := mustGet(t, s, "g")
	want := map[string]tcc.BranchState{"a": tcc.BranchConfirmed, "b": tcc.BranchRegistered, "c": tcc.BranchConfirmed,
		"d": tcc.BranchRegistered, "e": tcc.BranchConfirmed}
	for _, b := range got.Branches {
		if b.State != want[b.BranchID] || b.Attempts != 1 || b.Conflict != (b.BranchID == "d") {
			t.Errorf("branch %s: %s attempts %d conflict %v", b.BranchID, b.State, b.Attempts, b.Conflict)
		}
	}
	if got.State != tcc.StateCommitting || got.LastError != "boom" {
		t.Fatalf("record: %s %q", got.State, got.LastError)
	}
	// The next round finishes with the rest done in one go.
	err = s.RecordRound(ctx, tcc.RoundParams{GID: "g", Outcome: tcc.Commit, Version: got.Version,
		Done: []string{"b", "d"}, Finish: true, Now: t0})
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	if got := mustGet(t, s, "g"); got.State != tcc.StateCommitted {
		t.Fatalf("after finish: %s", got.State)
	}
}

func testRecordRoundReschedule(t *testing.T, s tcc.Store) {
	mustInsert(t, s, "g", "a", "b")
	tx, _ := decide(t, s, "g", tcc.Abort)
	next := t0.Add(time.Minute)
	err := s.RecordRound(context.Background(), tcc.RoundParams{GID: "g", Outcome: tcc.Abort, Version: tx.Version,
		Done: []string{"a"}, Failed: []tcc.BranchResult{{BranchID: "b", Err: "unavailable"}},
		NextAttemptAt: next, LastError: "b: unavailable", Now: t0})
	if err != nil {
		t.Fatalf("reschedule: %v", err)
	}
	got := mustGet(t, s, "g")
	if got.State != tcc.StateAborting || !got.NextAttemptAt.Equal(next) || got.LeaseOwner != "" || got.Attempts != 1 || got.LastError != "b: unavailable" {
		t.Fatalf("after reschedule: %+v", got)
	}
	if got.Branches[0].State != tcc.BranchCancelled || got.Branches[1].State != tcc.BranchRegistered ||
		got.Branches[1].Attempts != 1 || got.Branches[1].LastError != "unavailable" {
		t.Fatalf("branches after reschedule: %+v", got.Branches)
	}
}

func testRecordRoundStale(t *testing.T, s tcc.Store) {
	mustInsert(t, s, "g", "a")
	tx, _ := decide(t, s, "g", tcc.Commit)
	err := s.RecordRound(context.Background(), tcc.RoundParams{GID: "g", Outcome: tcc.Commit, Version: tx.Version - 1,
		Done: []string{"a"}, Finish: true, Now: t0})
	if !errors.Is(err, tcc.ErrConflict) {
		t.Fatalf("stale version: got %v, want ErrConflict", err)
	}
	got := mustGet(t, s, "g")
	if got.State != tcc.StateCommitting || got.Branches[0].State != tcc.BranchConfirmed {
		t.Fatalf("stale round: record must stay, branch fact must be kept: %s / %s", got.State, got.Branches[0].State)
	}
}

func testClaim(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	mustInsert(t, s, "g", "a")
	tx, _ := decide(t, s, "g", tcc.Commit) // lease until t0+30s
	_, err := s.Claim(ctx, tcc.ClaimParams{GID: "g", Version: tx.Version, Owner: "c2", LeaseUntil: t0.Add(time.Minute), Now: t0.Add(10 * time.Second)})
	if !errors.Is(err, tcc.ErrConflict) {
		t.Fatalf("claim before lease end: got %v", err)
	}
	_, err = s.Claim(ctx, tcc.ClaimParams{GID: "g", Version: tx.Version - 1, Owner: "c2", LeaseUntil: t0.Add(time.Minute), Now: t0.Add(40 * time.Second)})
	if !errors.Is(err, tcc.ErrConflict) {
		t.Fatalf("claim with stale version: got %v", err)
	}
	got, err := s.Claim(ctx, tcc.ClaimParams{GID: "g", Version: tx.Version, Owner: "c2", LeaseUntil: t0.Add(time.Minute), Now: t0.Add(40 * time.Second)})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if got.LeaseOwner != "c2" || got.Version != tx.Version+1 || len(got.Branches) != 1 {
		t.Fatalf("claimed: %+v", got)
	}
	// The old owner's round is now stale.
	err = s.RecordRound(ctx, tcc.RoundParams{GID: "g", Outcome: tcc.Commit, Version: tx.Version, Done: []string{"a"}, Finish: true, Now: t0})
	if !errors.Is(err, tcc.ErrConflict) {
		t.Fatalf("old owner's round after takeover: got %v", err)
	}
}

func testClaimConcurrent(t *testing.T, s tcc.Store) {
	mustInsert(t, s, "g", "a")
	tx, _ := decide(t, s, "g", tcc.Commit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Claim(context.Background(), tcc.ClaimParams{GID: "g", Version: tx.Version, Owner: fmt.Sprintf("c%d", i),
				LeaseUntil: t0.Add(2 * time.Minute), Now: t0.Add(time.Minute)})
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, tcc.ErrConflict) {
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d instances claimed the same transaction, want 1", wins)
	}
}

func testListDue(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	mustInsert(t, s, "trying") // due at t0+1m (its deadline)
	mustInsert(t, s, "committing", "a")
	decide(t, s, "committing", tcc.Commit) // due at t0+30s
	mustInsert(t, s, "done", "a")
	d, _ := decide(t, s, "done", tcc.Abort)
	if err := s.RecordRound(ctx, tcc.RoundParams{GID: "done", Outcome: tcc.Abort, Version: d.Version, Done: []string{"a"}, Finish: true, Now: t0}); err != nil {
		t.Fatal(err)
	}
	due, err := s.ListDue(ctx, t0.Add(10*time.Second), 10)
	if err != nil || len(due) != 0 {
		t.Fatalf("nothing due yet: %v %v", due, err)
	}
	due, err = s.ListDue(ctx, t0.Add(45*time.Second), 10)
	if err != nil || len(due) != 1 || due[0].GID != "committing" || due[0].State != tcc.StateCommitting {
		t.Fatalf("committing due: %+v %v", due, err)
	}
	due, err = s.ListDue(ctx, t0.Add(2*time.Minute), 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("both due: %+v %v", due, err)
	}
	due, err = s.ListDue(ctx, t0.Add(2*time.Minute), 1)
	if err != nil || len(due) != 1 {
		t.Fatalf("limit 1: %+v %v", due, err)
	}
}

func testRecordRoundConflict(t *testing.T, s tcc.Store) {
	mustInsert(t, s, "g", "a", "b")
	tx, _ := decide(t, s, "g", tcc.Commit)
	err := s.RecordRound(context.Background(), tcc.RoundParams{GID: "g", Outcome: tcc.Commit, Version: tx.Version,
		Done: []string{"a"}, Conflicts: []tcc.BranchResult{{BranchID: "b", Err: "already cancelled"}},
		NeedsAttention: true, NextAttemptAt: t0.Add(time.Hour), LastError: "conflict on b", Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, "g")
	if !got.NeedsAttention || got.State != tcc.StateCommitting {
		t.Fatalf("after conflict: %+v", got)
	}
	if b := got.Branches[1]; !b.Conflict || b.State != tcc.BranchRegistered || b.LastError != "already cancelled" {
		t.Fatalf("conflicted branch: %+v", b)
	}
	// A later round without the flag keeps it.
	err = s.RecordRound(context.Background(), tcc.RoundParams{GID: "g", Outcome: tcc.Commit, Version: got.Version,
		NextAttemptAt: t0.Add(2 * time.Hour), Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if !mustGet(t, s, "g").NeedsAttention {
		t.Fatal("needs_attention was cleared by a later round")
	}
}

func testRetryNow(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	mustInsert(t, s, "g", "a")
	if _, err := s.RetryNow(ctx, tcc.RetryParams{GID: "g", Now: t0}); !errors.Is(err, tcc.ErrState) {
		t.Fatalf("retry TRYING: %v", err)
	}
	tx, _ := decide(t, s, "g", tcc.Commit) // leased until t0+30s
	if _, err := s.RetryNow(ctx, tcc.RetryParams{GID: "g", Now: t0.Add(time.Second)}); !errors.Is(err, tcc.ErrConflict) {
		t.Fatalf("retry while leased: %v", err)
	}
	if err := s.RecordRound(ctx, tcc.RoundParams{GID: "g", Outcome: tcc.Commit, Version: tx.Version,
		Failed: []tcc.BranchResult{{BranchID: "a", Err: "down"}}, NextAttemptAt: t0.Add(time.Hour), Now: t0}); err != nil {
		t.Fatal(err)
	}
	got, err := s.RetryNow(ctx, tcc.RetryParams{GID: "g", Now: t0.Add(2 * time.Second)})
	if err != nil || !got.NextAttemptAt.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("retry now: %v %+v", err, got)
	}
	if _, err := s.RetryNow(ctx, tcc.RetryParams{GID: "missing", Now: t0}); !errors.Is(err, tcc.ErrNotFound) {
		t.Fatalf("retry unknown: %v", err)
	}
}

func testResolveBranch(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	mustInsert(t, s, "g", "a", "b")
	p := tcc.ResolveParams{GID: "g", BranchID: "b", State: tcc.BranchCancelled, Reason: "ticket 42", Now: t0.Add(time.Minute)}
	if _, err := s.ResolveBranch(ctx, p); !errors.Is(err, tcc.ErrState) {
		t.Fatalf("resolve while TRYING: %v", err)
	}
	decide(t, s, "g", tcc.Commit)
	got, err := s.ResolveBranch(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if b := got.Branches[1]; b.State != tcc.BranchCancelled || b.Resolution != "ticket 42" || !got.NextAttemptAt.Equal(p.Now) {
		t.Fatalf("resolved: %+v next %s", b, got.NextAttemptAt)
	}
	if _, err := s.ResolveBranch(ctx, p); !errors.Is(err, tcc.ErrState) {
		t.Fatalf("resolve twice: %v", err)
	}
	p.BranchID = "zz"
	if _, err := s.ResolveBranch(ctx, p); !errors.Is(err, tcc.ErrNotFound) {
		t.Fatalf("resolve unknown branch: %v", err)
	}
}

func testListTransactions(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		mustInsert(t, s, fmt.Sprintf("g%d", i), "a")
	}
	decide(t, s, "g1", tcc.Commit)
	decide(t, s, "g3", tcc.Commit)
	all, err := s.ListTransactions(ctx, tcc.ListParams{Limit: 3})
	if err != nil || len(all) != 3 || all[0].GID != "g0" || all[2].GID != "g2" || len(all[0].Branches) != 0 {
		t.Fatalf("page 1: %v %v", all, err)
	}
	if all[0].BranchCount != 1 {
		t.Fatalf("page 1: branch count %d, want 1", all[0].BranchCount)
	}
	next, err := s.ListTransactions(ctx, tcc.ListParams{Limit: 3, After: "g2"})
	if err != nil || len(next) != 2 || next[0].GID != "g3" {
		t.Fatalf("page 2: %v %v", next, err)
	}
	committing, err := s.ListTransactions(ctx, tcc.ListParams{Limit: 10, State: tcc.StateCommitting})
	if err != nil || len(committing) != 2 || committing[0].GID != "g1" || committing[1].GID != "g3" {
		t.Fatalf("by state: %v %v", committing, err)
	}
	att, err := s.ListTransactions(ctx, tcc.ListParams{Limit: 10, NeedsAttention: true})
	if err != nil || len(att) != 0 {
		t.Fatalf("needs attention: %v %v", att, err)
	}
	old, err := s.ListTransactions(ctx, tcc.ListParams{Limit: 10, CreatedBefore: t0})
	if err != nil || len(old) != 0 {
		t.Fatalf("created before t0: %v %v", old, err)
	}
}

func testPurge(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	finish := func(gid string, o tcc.Outcome, at time.Time) {
		mustInsert(t, s, gid, "a")
		tx, _ := decide(t, s, gid, o)
		if err := s.RecordRound(ctx, tcc.RoundParams{GID: gid, Outcome: o, Version: tx.Version, Done: []string{"a"}, Finish: true, Now: at}); err != nil {
			t.Fatal(err)
		}
	}
	finish("old-c", tcc.Commit, t0)
	finish("old-a", tcc.Abort, t0)
	finish("new", tcc.Commit, t0.Add(48*time.Hour))
	mustInsert(t, s, "open", "a") // never purged
	decide(t, s, "open", tcc.Commit)
	tomb := &tcc.Transaction{GID: "tomb", State: tcc.StateAborted, Version: 1, Deadline: t0, NextAttemptAt: t0,
		Tombstone: true, CreatedAt: t0, UpdatedAt: t0}
	if err := s.InsertTransaction(ctx, tomb); err != nil {
		t.Fatal(err)
	}
	n, err := s.Purge(ctx, tcc.PurgeParams{Before: t0.Add(24 * time.Hour), TombstonesBefore: t0, Limit: 10})
	if err != nil || n != 2 {
		t.Fatalf("purge: %d %v, want 2", n, err)
	}
	for _, gid := range []string{"old-c", "old-a"} {
		if _, err := s.GetTransaction(ctx, gid); !errors.Is(err, tcc.ErrNotFound) {
			t.Fatalf("%s not purged: %v", gid, err)
		}
	}
	for _, gid := range []string{"new", "open", "tomb"} {
		mustGet(t, s, gid)
	}
	n, err = s.Purge(ctx, tcc.PurgeParams{Before: t0.Add(24 * time.Hour), TombstonesBefore: t0.Add(time.Hour), Limit: 10})
	if err != nil || n != 1 {
		t.Fatalf("purge tombstone: %d %v", n, err)
	}
}

// testInsertWithBranches: branches registered with Begin are written with
// the record, count against the branch limit, and a duplicate insert
// writes nothing.
func testInsertWithBranches(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	tx := newTx("g")
	tx.Branches = []tcc.Branch{branch("g", "a"), branch("g", "b")}
	if err := s.InsertTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, "g")
	if len(got.Branches) != 2 || got.Branches[0].BranchID != "a" || got.Branches[1].BranchID != "b" {
		t.Fatalf("branches %+v, want a and b", got.Branches)
	}
	for _, b := range got.Branches {
		want := branch("g", b.BranchID)
		if b.State != tcc.BranchRegistered || b.Participant != want.Participant || string(b.Payload) != string(want.Payload) ||
			b.PayloadDigest != want.PayloadDigest || !b.CreatedAt.Equal(t0) {
			t.Fatalf("branch %s stored as %+v", b.BranchID, b)
		}
	}
	err := s.AddBranch(ctx, tcc.AddBranchParams{Branch: branch("g", "c"), MaxBranches: 2, Now: t0})
	if !errors.Is(err, tcc.ErrTooManyBranches) {
		t.Fatalf("third branch over a limit of 2: %v, want ErrTooManyBranches", err)
	}
	again := newTx("g")
	again.Branches = []tcc.Branch{branch("g", "x")}
	if err := s.InsertTransaction(ctx, again); !errors.Is(err, tcc.ErrDuplicate) {
		t.Fatalf("duplicate insert: %v, want ErrDuplicate", err)
	}
	if got := mustGet(t, s, "g"); len(got.Branches) != 2 {
		t.Fatalf("duplicate insert changed the branches: %+v", got.Branches)
	}
}

// testInsertWithBranchesConcurrent: concurrent inserts (grouped by stores
// that batch) each get their own answer: every record has exactly its own
// branches, and a duplicate in the crowd is refused without harm.
func testInsertWithBranchesConcurrent(t *testing.T, s tcc.Store) {
	ctx := context.Background()
	const n = 24
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := 0; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gid := fmt.Sprintf("c%02d", i%n) // the last one repeats c00
			tx := newTx(gid)
			if i%2 == 0 {
				tx.Branches = []tcc.Branch{branch(gid, "a"), branch(gid, fmt.Sprint(i))}
			}
			errs[i] = s.InsertTransaction(ctx, tx)
		}()
	}
	wg.Wait()
	dups := 0
	for i, err := range errs {
		switch {
		case errors.Is(err, tcc.ErrDuplicate):
			dups++
		case err != nil:
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	if dups != 1 {
		t.Fatalf("%d duplicates refused, want 1", dups)
	}
	for i := 1; i < n; i++ {
		got := mustGet(t, s, fmt.Sprintf("c%02d", i))
		want := 0
		if i%2 == 0 {
			want = 2
		}
		if len(got.Branches) != want {
			t.Fatalf("c%02d has %d branches, want %d", i, len(got.Branches), want)
		}
	}
	if got := mustGet(t, s, "c00"); len(got.Branches) != 2 {
		t.Fatalf("c00 (inserted twice, with branches both times) has %d branches", len(got.Branches))
	}
}
