package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/tcc"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

// seedDue writes n decided (COMMITTING) two-branch transactions whose lease
// has already expired, as a crashed coordinator would leave them.
func seedDue(t *testing.T, s *sqlstore.Store, n int, participant string) {
	t.Helper()
	ctx := context.Background()
	past := time.Now().UTC().Add(-time.Minute)
	for i := 0; i < n; i++ {
		gid := fmt.Sprintf("due-%05d", i)
		tx := &tcc.Transaction{GID: gid, State: tcc.StateTrying, Version: 1, Timeout: time.Minute,
			Deadline: past.Add(time.Hour), NextAttemptAt: past.Add(time.Hour), CreatedAt: past, UpdatedAt: past}
		if err := s.InsertTransaction(ctx, tx); err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{"accounts", "inventory"} {
			p := []byte(`{"n":1}`)
			br := tcc.Branch{GID: gid, BranchID: b, Participant: participant, Payload: p, PayloadDigest: tcc.Digest(p),
				State: tcc.BranchRegistered, CreatedAt: past, UpdatedAt: past}
			if err := s.AddBranch(ctx, tcc.AddBranchParams{Branch: br, MaxBranches: 64, Now: past}); err != nil {
				t.Fatal(err)
			}
		}
		if _, won, err := s.Decide(ctx, tcc.DecideParams{GID: gid, Outcome: tcc.Commit, Owner: "crashed", LeaseUntil: past, Now: past}); err != nil || !won {
			t.Fatalf("decide %s: %v %v", gid, won, err)
		}
	}
}

func countState(t *testing.T, s *sqlstore.Store, state tcc.State) int {
	t.Helper()
	var n int64
	if err := s.DB().Raw("SELECT COUNT(*) FROM transaction_record WHERE state = ?", string(state)).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// TestTwoCoordinatorsDrain (S14, S15): two coordinator processes on one
// MariaDB database drain 2,000 due transactions. Each finishes once, no
// branch is ever driven by both instances at the same moment, and killing
// one instance mid-drain loses nothing.
func TestTwoCoordinatorsDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 2,000-transaction drain")
	}
	const n = 2000
	const concurrency = 16
	spec := dbtest.NewMySQL(t)
	store, err := sqlstore.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	part := testparticipant.Start(t)
	part.SetBehaviour(func(ctx context.Context, _, _, _ string) error {
		time.Sleep(2 * time.Millisecond) // a participant doing some work
		return nil
	})
	seedDue(t, store, n, part.Addr())

	args := func(addr, id string) []string {
		return []string{"-listen", addr, "-http-listen", "", "-db", spec, "-instance-id", id,
			"-lease-ttl", "3s", "-call-timeout", "1s", "-recovery-interval", "50ms",
			"-recovery-batch", "100", "-recovery-concurrency", fmt.Sprint(concurrency), "-log-level", "warn"}
	}
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := start(t, "coordinator-a", bins.coordinator, addrA, nil, args(addrA, "a")...)
	start(t, "coordinator-b", bins.coordinator, addrB, nil, args(addrB, "b")...)

	start := time.Now()
	deadline := start.Add(120 * time.Second)
	killed := false
	for {
		done := countState(t, store, tcc.StateCommitted)
		if !killed && done >= n/3 {
			a.kill()
			killed = true
			t.Logf("killed coordinator a (SIGKILL) with %d/%d finished after %s", done, n, time.Since(start).Round(time.Millisecond))
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d/%d finished after 120s", done, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("drained %d transactions with two instances (one killed) in %s", n, time.Since(start).Round(time.Millisecond))
	if !killed {
		t.Fatal("drain finished before the kill: the test did not test a crash")
	}

	var notConfirmed int64
	if err := store.DB().Raw("SELECT COUNT(*) FROM branch_record WHERE state <> ?", string(tcc.BranchConfirmed)).Scan(&notConfirmed).Error; err != nil {
		t.Fatal(err)
	}
	if notConfirmed != 0 {
		t.Fatalf("%d branches not confirmed", notConfirmed)
	}
	if m := part.MaxConcurrent(); m != 1 {
		t.Fatalf("a branch was driven by %d calls at the same moment, want 1", m)
	}
	dups := 0
	for i := 0; i < n; i++ {
		for _, b := range []string{"accounts", "inventory"} {
			c := part.Count("Confirm", fmt.Sprintf("due-%05d", i), b)
			if c == 0 {
				t.Fatalf("due-%05d/%s never confirmed at the participant", i, b)
			}
			dups += c - 1
		}
	}
	// Only calls in flight at the kill may be repeated by the survivor.
	if dups > 2*concurrency {
		t.Fatalf("%d repeated Confirms, more than the %d that could be in flight at the kill", dups, 2*concurrency)
	}
	t.Logf("repeated Confirms (in flight at the kill, absorbed by participant idempotency): %d", dups)
}
