package faulttest

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/demo"
)

// startTestCluster starts a one-coordinator SQLite cluster with the
// default shop and returns it with its baseline.
func startTestCluster(t *testing.T) (*Cluster, Baseline, Shop) {
	t.Helper()
	partDB := map[string]string{}
	for _, b := range Branches {
		partDB[b] = dbtest.NewSQLite(t)
	}
	c, err := StartCluster(ClusterConfig{Bins: bins, Timing: DefaultTiming, Coordinators: 1,
		CoordDB: dbtest.NewSQLite(t), PartDB: partDB, Seed: 1, Faults: NewStats()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	shop := DefaultShop()
	ctx := context.Background()
	if err := setupShop(ctx, partDB, shop); err != nil {
		t.Fatal(err)
	}
	base, err := readSnapshots(ctx, partDB)
	if err != nil {
		t.Fatal(err)
	}
	return c, base, shop
}

// TestCheckerCatchesViolations: a checker that never fails proves nothing.
// A clean run passes; then the participants' tables and the observed
// decisions are tampered with, and each invariant reports it.
func TestCheckerCatchesViolations(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts real processes")
	}
	c, base, shop := startTestCluster(t)
	ctx := context.Background()
	rec := NewRecorder()
	in := &Initiator{C: c, Rec: rec, Timing: DefaultTiming}
	rng := rand.New(rand.NewPCG(7, 7))
	var committed string
	for n := 0; n < 40 && committed == ""; n++ {
		o := GenOrder(rng, shop, 7, 0, n, 1)
		o.Kind, o.User = KindNormal, shop.Rich[0]
		in.Run(ctx, &o)
		if rec.decisions[o.GID].commit {
			committed = o.GID
		}
	}
	if committed == "" {
		t.Fatal("no order committed without faults")
	}
	res, err := Check(ctx, c, rec, base, CheckOptions{Bound: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) > 0 {
		t.Fatalf("clean run has violations: %v", res.Violations)
	}

	// Tamper: the committed order's accounts fence says CANCELLED (I1),
	// a stray effect moves money out of thin air (I2, I6), a reservation
	// is left behind (I5), and an abort is observed for a committed
	// transaction (I3).
	adb := dbtest.Open(t, c.partDB[demo.BranchAccounts])
	for _, q := range []string{
		"UPDATE settle_fence SET state = 'CANCELLED' WHERE gid = '" + committed + "'",
		"UPDATE demo_account SET balance = balance + 7 WHERE name = '" + shop.Rich[1] + "'",
		"UPDATE demo_account SET frozen = frozen + 3 WHERE name = '" + shop.Rich[2] + "'",
	} {
		if err := adb.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rec.Observe(committed, tccv1.TransactionState_TRANSACTION_STATE_ABORTED, "tamper")
	res, err = Check(ctx, c, rec, base, CheckOptions{Bound: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(res.Violations, "\n")
	for _, want := range []string{"I1 " + committed, "I2 account " + shop.Rich[1], "I3 " + committed, "I5 accounts", "I6 money"} {
		if !strings.Contains(got, want) {
			t.Errorf("violations do not report %q:\n%s", want, got)
		}
	}
}
