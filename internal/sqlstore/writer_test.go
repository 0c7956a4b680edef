package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/tcc"
)

// TestSharedWrite: Begins, registrations, decisions and delivery rounds
// queued while a write runs are written together, in one round trip on
// MySQL (a script) and PostgreSQL (a pipeline), and each request gets exactly its own result; when one of them
// fails the shared write (a duplicate gid), the others are still written
// and only that one fails.
func TestSharedWrite(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		for _, withDuplicate := range []bool{false, true} {
			t.Run(fmt.Sprintf("duplicate=%v", withDuplicate), func(t *testing.T) {
				testSharedWrite(t, spec, withDuplicate)
			})
		}
	})
}

func testSharedWrite(t *testing.T, spec string, withDuplicate bool) {
	ctx := context.Background()
	s, other := openTwo(t, spec)
	prefix := fmt.Sprintf("dup%v-", withDuplicate)
	gid := func(kind string, i int) string { return fmt.Sprintf("%s%s-%d", prefix, kind, i) }
	const n = 4

	// Records to register on, to decide and to finish (even ones
	// committed, odd ones aborted), all written by s.
	outcomeOf := func(i int) tcc.Outcome { return [2]tcc.Outcome{tcc.Commit, tcc.Abort}[i%2] }
	var finishing []*tcc.Transaction
	for i := 0; i < n; i++ {
		for _, g := range []string{gid("reg", i), gid("dec", i)} {
			if err := s.InsertTransaction(ctx, knownTx(g, "a")); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.InsertTransaction(ctx, knownTx(gid("fin", i), "a", "b")); err != nil {
			t.Fatal(err)
		}
		tx, won, err := decideAs(s, "S", gid("fin", i), outcomeOf(i), time.Second)
		if err != nil || !won {
			t.Fatalf("decide %s: won=%v err=%v", gid("fin", i), won, err)
		}
		finishing = append(finishing, tx)
	}

	queued, flush := s.HoldWrites()
	var wg sync.WaitGroup
	errs := map[string]error{}
	var mu sync.Mutex
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f()
			mu.Lock()
			errs[name] = err
			mu.Unlock()
		}()
	}
	for i := 0; i < n; i++ {
		run(gid("new", i), func() error { return s.InsertTransaction(ctx, knownTx(gid("new", i), "x", "y")) })
		run(gid("reg", i), func() error {
			_, err := s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: knownBranch(gid("reg", i), "b"), MaxBranches: 8, Now: k0})
			return err
		})
		run(gid("dec", i), func() error {
			_, won, err := decideAs(s, "S", gid("dec", i), tcc.Commit, time.Second)
			if err == nil && !won {
				err = errors.New("not won")
			}
			return err
		})
		tx := finishing[i]
		run(gid("fin", i), func() error {
			// Each call's latency is its own (branch a: i ms, b: i ms +
			// 500 us): the grouped UPDATE must give every branch row its
			// own, not another gid's or branch's.
			return s.RecordRound(ctx, tcc.RoundParams{GID: tx.GID, Outcome: outcomeOf(i), Version: tx.Version,
				Done: []string{"a", "b"}, Finish: true, Now: k0.Add(2 * time.Second), Instance: "S",
				Calls: []tcc.CallRecord{
					{BranchID: "a", Attempt: 1, Result: tcc.ResultSuccess, Code: "OK", Latency: latencyOf(i, "a")},
					{BranchID: "b", Attempt: 1, Result: tcc.ResultSuccess, Code: "OK", Latency: latencyOf(i, "b")},
				}})
		})
	}
	want := 4 * n
	if withDuplicate {
		// A Begin of a gid that exists: it fails the shared write.
		run("duplicate", func() error { return s.InsertTransaction(ctx, knownTx(gid("dec", 0), "z")) })
		want++
	}
	for deadline := time.Now().Add(10 * time.Second); queued() < want; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", queued(), want)
		}
		time.Sleep(time.Millisecond)
	}
	before := s.RoundTrips()
	flush()
	wg.Wait()

	if !withDuplicate && !strings.HasPrefix(spec, "sqlite:") {
		if trips := s.RoundTrips() - before; trips != 1 {
			t.Fatalf("%d requests of four kinds took %d round trips, want 1", want, trips)
		}
	}
	for name, err := range errs {
		if name == "duplicate" {
			if !errors.Is(err, tcc.ErrDuplicate) {
				t.Fatalf("Begin of an existing gid: %v, want ErrDuplicate", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// What the other instance reads is what each request asked for.
	for i := 0; i < n; i++ {
		check := func(g string, state tcc.State, branches int) {
			t.Helper()
			tx, err := other.GetTransaction(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			if tx.State != state || len(tx.Branches) != branches {
				t.Fatalf("%s: %s with %d branches, want %s with %d", g, tx.State, len(tx.Branches), state, branches)
			}
		}
		check(gid("new", i), tcc.StateTrying, 2)
		check(gid("reg", i), tcc.StateTrying, 2)
		check(gid("dec", i), tcc.StateCommitting, 1)
		check(gid("fin", i), outcomeOf(i).FinalState(), 2)
		events, err := other.History(ctx, gid("fin", i))
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, e := range events {
			if e.Kind != tcc.EventAttempt {
				continue
			}
			seen++
			if e.Result != tcc.ResultSuccess || e.Latency != latencyOf(i, e.BranchID) || e.Instance != "S" {
				t.Fatalf("%s: attempt %+v, want success in %s by S", gid("fin", i), e, latencyOf(i, e.BranchID))
			}
		}
		if seen != 2 {
			t.Fatalf("%s: %d attempts in the history, want 2", gid("fin", i), seen)
		}
	}
}

// latencyOf is the latency TestSharedWrite gives the call of branch b of
// its i-th finishing round.
func latencyOf(i int, b string) time.Duration {
	d := time.Duration(i+1) * time.Millisecond
	if b == "b" {
		d += 500 * time.Microsecond
	}
	return d
}
