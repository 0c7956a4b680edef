package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/sqlstore/sqlstoretest"
	"github.com/settle-tcc/settle/internal/tcc"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

// TestTwoCoordinatorsDrain (S14, S15): two coordinator processes on one
// MariaDB database, then on one PostgreSQL database, drain 2,000 due
// transactions. Each finishes once, no branch is ever driven by both
// instances at the same moment, and killing one instance mid-drain loses
// nothing.
func TestTwoCoordinatorsDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 2,000-transaction drain")
	}
	for _, be := range dbtest.Backends() {
		if be.Name == "sqlite" {
			continue // one process per SQLite file
		}
		t.Run(be.Name, func(t *testing.T) { testTwoCoordinatorsDrain(t, be.New(t)) })
	}
}

func testTwoCoordinatorsDrain(t *testing.T, spec string) {
	const n = 2000
	const concurrency = 16
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
	sqlstoretest.Seed(t, store, "due", n, sqlstoretest.Due, part.Addr())

	args := func(addr, id string) []string {
		return []string{"-listen", addr, "-http-listen", "", "-db", spec, "-instance-id", id,
			"-lease-ttl", "3s", "-call-timeout", "1s", "-recovery-interval", "50ms",
			"-recovery-batch", "100", "-recovery-concurrency", fmt.Sprint(concurrency), "-log-level", "warn"}
	}
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := start(t, "coordinator-a", bins.Coordinator, addrA, nil, args(addrA, "a")...)
	start(t, "coordinator-b", bins.Coordinator, addrB, nil, args(addrB, "b")...)

	start := time.Now()
	deadline := start.Add(120 * time.Second)
	killed := false
	for {
		done := sqlstoretest.CountState(t, store, tcc.StateCommitted)
		if !killed && done >= n/3 {
			a.Kill()
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
			c := part.Count("Confirm", sqlstoretest.GID("due", i), b)
			if c == 0 {
				t.Fatalf("%s/%s never confirmed at the participant", sqlstoretest.GID("due", i), b)
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
