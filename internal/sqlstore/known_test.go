package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/tcc"
	"github.com/settle-tcc/settle/internal/tcc/storetest"
)

var k0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func knownTx(gid string, branches ...string) *tcc.Transaction {
	tx := &tcc.Transaction{GID: gid, State: tcc.StateTrying, Version: 1, Timeout: time.Minute,
		Deadline: k0.Add(time.Minute), NextAttemptAt: k0.Add(time.Minute), CreatedAt: k0, UpdatedAt: k0}
	for _, id := range branches {
		tx.Branches = append(tx.Branches, knownBranch(gid, id))
	}
	return tx
}

func knownBranch(gid, id string) tcc.Branch {
	p := []byte(id)
	return tcc.Branch{GID: gid, BranchID: id, Participant: "127.0.0.1:7501", Payload: p, PayloadDigest: tcc.Digest(p),
		State: tcc.BranchRegistered, CreatedAt: k0, UpdatedAt: k0}
}

func decideParams(owner, gid string, o tcc.Outcome, at time.Duration) tcc.DecideParams {
	return tcc.DecideParams{GID: gid, Outcome: o, Owner: owner,
		LeaseUntil: k0.Add(30*time.Second + at), AbortReason: "test", Now: k0.Add(at)}
}

func decideAs(s *sqlstore.Store, owner, gid string, o tcc.Outcome, at time.Duration) (*tcc.Transaction, bool, error) {
	return s.Decide(context.Background(), decideParams(owner, gid, o, at))
}

// wantStored fails unless tx, returned by op, is exactly what s reads for
// its gid.
func wantStored(t *testing.T, s *sqlstore.Store, op string, tx *tcc.Transaction) {
	t.Helper()
	got, err := s.GetTransaction(context.Background(), tx.GID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tx, got) {
		t.Fatalf("%s: %s returned\n%+v\nthe database holds\n%+v", tx.GID, op, tx, got)
	}
}

func openTwo(t *testing.T, spec string) (a, b *sqlstore.Store) {
	t.Helper()
	var stores [2]*sqlstore.Store
	for i := range stores {
		s, err := sqlstore.Open(context.Background(), spec)
		if err != nil {
			t.Fatalf("open store %d: %v", i, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores[i] = s
	}
	return stores[0], stores[1]
}

// TestDecideKnownRecord: a store decides a record it wrote with one
// statement, and falls back to reading it when another instance (a second
// store on the same database) changed or decided the record meanwhile.
func TestDecideKnownRecord(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		ctx := context.Background()
		a, b := openTwo(t, spec)

		// Alone: one statement.
		if err := a.InsertTransaction(ctx, knownTx("solo", "p", "q")); err != nil {
			t.Fatal(err)
		}
		before := a.RoundTrips()
		tx, won, err := decideAs(a, "A", "solo", tcc.Commit, time.Second)
		if err != nil || !won {
			t.Fatalf("decide solo: won=%v err=%v", won, err)
		}
		if n := a.RoundTrips() - before; n != 1 {
			t.Fatalf("deciding a record the store wrote took %d statements, want 1", n)
		}
		wantStored(t, a, "Decide", tx)

		// A branch registered through the other instance: the remembered
		// version is stale; the decision still wins and carries the branch.
		if err := a.InsertTransaction(ctx, knownTx("moved", "p")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.RegisterBranch(ctx, tcc.AddBranchParams{Branch: knownBranch("moved", "late"), MaxBranches: 8, Now: k0}); err != nil {
			t.Fatal(err)
		}
		tx, won, err = decideAs(a, "A", "moved", tcc.Commit, time.Second)
		if err != nil || !won || len(tx.Branches) != 2 || tx.Branches[0].BranchID != "late" {
			t.Fatalf("decide moved: won=%v err=%v tx=%+v", won, err, tx)
		}
		wantStored(t, a, "Decide", tx)

		// Decided through the other instance first: not won, its outcome.
		if err := a.InsertTransaction(ctx, knownTx("taken", "p")); err != nil {
			t.Fatal(err)
		}
		if _, won, err := decideAs(b, "B", "taken", tcc.Abort, time.Second); err != nil || !won {
			t.Fatalf("B decides taken: won=%v err=%v", won, err)
		}
		tx, won, err = decideAs(a, "A", "taken", tcc.Commit, 2*time.Second)
		if err != nil || won || tx.State != tcc.StateAborting || tx.LeaseOwner != "B" {
			t.Fatalf("A decides taken after B: won=%v err=%v tx=%+v", won, err, tx)
		}
		wantStored(t, a, "Decide", tx)

		// Together, some changed and some decided elsewhere: every answer
		// is exact.
		const n = 24
		for i := 0; i < n; i++ {
			gid := fmt.Sprintf("crowd-%02d", i)
			if err := a.InsertTransaction(ctx, knownTx(gid, "p")); err != nil {
				t.Fatal(err)
			}
			switch i % 4 {
			case 1:
				if _, err := b.RegisterBranch(ctx, tcc.AddBranchParams{Branch: knownBranch(gid, "q"), MaxBranches: 8, Now: k0}); err != nil {
					t.Fatal(err)
				}
			case 2:
				if _, won, err := decideAs(b, "B", gid, tcc.Abort, time.Second); err != nil || !won {
					t.Fatalf("B decides %s: won=%v err=%v", gid, won, err)
				}
			}
		}
		params := make([]tcc.DecideParams, n)
		for i := range params {
			params[i] = decideParams("A", fmt.Sprintf("crowd-%02d", i), tcc.Commit, time.Duration(i)*time.Millisecond)
		}
		results := storetest.DecideAll(a, params)
		for i, r := range results {
			gid := fmt.Sprintf("crowd-%02d", i)
			if r.Err != nil {
				t.Fatalf("decide %s: %v", gid, r.Err)
			}
			wantWon := i%4 != 2
			if r.Won != wantWon {
				t.Fatalf("%s: won=%v, want %v (state %s)", gid, r.Won, wantWon, r.Tx.State)
			}
			if wantBranches := 1 + btoi(i%4 == 1); len(r.Tx.Branches) != wantBranches {
				t.Fatalf("%s: %d branches, want %d", gid, len(r.Tx.Branches), wantBranches)
			}
			wantStored(t, a, "Decide", r.Tx)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestRegisterKnownRecord: registering a branch of a record the store
// wrote is one round trip and returns exactly what the database holds;
// refusals (duplicate branch, limit, decided, changed elsewhere) fall back
// to the reading path and are reported exactly.
func TestRegisterKnownRecord(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		ctx := context.Background()
		a, b := openTwo(t, spec)
		register := func(s *sqlstore.Store, gid, id string, max int) (*tcc.Transaction, error) {
			return s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: knownBranch(gid, id), MaxBranches: max, Now: k0.Add(time.Millisecond)})
		}

		if err := a.InsertTransaction(ctx, knownTx("reg", "m")); err != nil {
			t.Fatal(err)
		}
		before := a.RoundTrips()
		tx, err := register(a, "reg", "z", 3)
		if err != nil {
			t.Fatal(err)
		}
		// No read: one script on MySQL, one statement on PostgreSQL (a
		// data-modifying WITH); BEGIN, UPDATE, INSERT, COMMIT on SQLite
		// (in-process).
		want := int64(4)
		if !strings.HasPrefix(spec, "sqlite:") {
			want = 1
		}
		if n := a.RoundTrips() - before; n != want {
			t.Fatalf("registering on a record the store wrote took %d round trips, want %d", n, want)
		}
		wantStored(t, b, "RegisterBranch", tx)
		tx, err = register(a, "reg", "a", 3)
		if err != nil {
			t.Fatal(err)
		}
		wantStored(t, b, "RegisterBranch", tx)
		if ids := []string{tx.Branches[0].BranchID, tx.Branches[1].BranchID, tx.Branches[2].BranchID}; !reflect.DeepEqual(ids, []string{"a", "m", "z"}) {
			t.Fatalf("branches %v, want a m z", ids)
		}
		// Full: refused, nothing written.
		if tx, err = register(a, "reg", "x", 3); !errors.Is(err, tcc.ErrTooManyBranches) || len(tx.Branches) != 3 {
			t.Fatalf("over the limit: err=%v tx=%+v", err, tx)
		}
		// Duplicate branch id: refused, nothing written.
		if tx, err = register(a, "reg", "m", 8); !errors.Is(err, tcc.ErrDuplicate) || len(tx.Branches) != 3 {
			t.Fatalf("duplicate branch: err=%v tx=%+v", err, tx)
		}
		wantStored(t, b, "RegisterBranch", tx)
		// Still known after the refusals: deciding is one round trip.
		before = a.RoundTrips()
		if _, won, err := decideAs(a, "A", "reg", tcc.Commit, time.Second); err != nil || !won {
			t.Fatalf("decide reg: won=%v err=%v", won, err)
		}
		if n := a.RoundTrips() - before; n != 1 {
			t.Fatalf("deciding after refused registrations took %d round trips, want 1", n)
		}
		// Decided: registration refused with the state.
		var se *tcc.StateError
		if _, err := register(a, "reg", "late", 8); !errors.As(err, &se) || se.Actual != tcc.StateCommitting {
			t.Fatalf("register after the decision: %v", err)
		}

		// Changed through the other instance: the remembered version is
		// stale; the registration still succeeds and carries both.
		if err := a.InsertTransaction(ctx, knownTx("both")); err != nil {
			t.Fatal(err)
		}
		if _, err := register(b, "both", "from-b", 8); err != nil {
			t.Fatal(err)
		}
		if tx, err = register(a, "both", "from-a", 8); err != nil || len(tx.Branches) != 2 {
			t.Fatalf("register after the other instance: err=%v tx=%+v", err, tx)
		}
		wantStored(t, b, "RegisterBranch", tx)

		// Many at once, through both paths.
		const n = 16
		for i := 0; i < n; i++ {
			if err := a.InsertTransaction(ctx, knownTx(fmt.Sprintf("many-%02d", i), "p")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := register(b, "many-03", "q", 8); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := "r"
				if i == 5 {
					id = "p" // a duplicate in the crowd
				}
				_, errs[i] = register(a, fmt.Sprintf("many-%02d", i), id, 8)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			gid := fmt.Sprintf("many-%02d", i)
			got, gerr := b.GetTransaction(ctx, gid)
			if gerr != nil {
				t.Fatal(gerr)
			}
			want := 2
			switch i {
			case 3:
				want = 3
			case 5:
				want = 1
				if !errors.Is(err, tcc.ErrDuplicate) {
					t.Fatalf("%s: duplicate branch in a crowd: %v", gid, err)
				}
				err = nil
			}
			if err != nil || len(got.Branches) != want {
				t.Fatalf("%s: err=%v, %d branches, want %d", gid, err, len(got.Branches), want)
			}
		}
	})
}
