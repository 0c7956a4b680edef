package faulttest

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"gorm.io/gorm"

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
		CoordDB: dbtest.NewSQLite(t), PartDB: partDB, OrdersDB: dbtest.NewSQLite(t), Seed: 1, Faults: NewStats()})
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
// A clean run of every scenario the rules look at passes; then the
// participants' tables, the coordinator's tombstones, the recorded
// outcomes and the processes are tampered with, and every invariant and
// check reports it: I1-I7 (I5 in each form: a reservation left, a Try
// accepted after its Cancel answered OK, a late Try accepted after the
// Cancel was acknowledged, a late Try accepted that the fence does not
// show tried then cancelled), the progress rules, a crash and an
// unexplained harness error.
func TestCheckerCatchesViolations(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts real processes")
	}
	c, base, shop := startTestCluster(t)
	ctx := context.Background()
	rec := NewRecorder()
	in := &Initiator{C: c, Rec: rec, Timing: DefaultTiming}
	rng := rand.New(rand.NewPCG(7, 7))
	n := 0
	order := func(kind Kind, step int) *Order {
		o := GenOrder(rng, shop, 7, 0, n, 1)
		n++
		o.Kind, o.Step, o.User, o.SKU, o.Qty = kind, step, shop.Rich[0], "pen", 1
		o.Amount = shop.Prices["pen"]
		o.WaitRollback = true
		return &o
	}
	// The orphan waits for the participant's check-back (seconds): run it
	// beside the others.
	orphan := order(KindOrphanTry, 0)
	// So does the local order whose initiator dies between its local
	// commit and Commit (the coordinator asks the decider at the deadline).
	localKilled := order(KindLocal, LocalKilled)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); in.Run(ctx, orphan) }()
	go func() { defer wg.Done(); in.Run(ctx, localKilled) }()
	localOK, localRefused := order(KindLocal, LocalCommit), order(KindLocal, LocalRefused)
	in.Run(ctx, localOK)
	in.Run(ctx, localRefused)
	committed := order(KindNormal, 0)
	in.Run(ctx, committed)
	cancelFirst := order(KindCancelFirst, 0)
	in.Run(ctx, cancelFirst)
	lateStrict, lateLoose := order(KindLateTry, 0), order(KindLateTry, 1)
	in.Run(ctx, lateStrict)
	in.Run(ctx, lateLoose)
	// Both Tries, then nothing: the deadline aborts them; tampered below
	// into orders owed a commit.
	owed1, owed2 := order(KindAbandon, 5), order(KindAbandon, 5)
	in.Run(ctx, owed1)
	in.Run(ctx, owed2)
	wg.Wait()
	for _, x := range []struct {
		ok   bool
		what string
	}{
		{rec.decisions[committed.GID].commit, "the normal order committed"},
		{cancelFirst.Out.CancelFirst == ReplyOK && cancelFirst.Out.HangingTry == ReplyRefused, "cancel_first: Cancel OK, then Try refused"},
		{lateStrict.Out.LateBranchCancelled && lateStrict.Out.LateTry == ReplyRefused, "late_try (strict): Cancel acknowledged, late Try refused"},
		{lateLoose.Out.LateBranchCancelled && lateLoose.Out.LateTry == ReplyRefused, "late_try: Cancel acknowledged, late Try refused"},
		{orphan.Out.OrphanTry == ReplyOK && rec.Txns.Get("initiator:orphan_presumed_aborted_late_begin_refused") == 1, "orphan: Try OK, presumed aborted, late Begin refused"},
		{owed1.Out.TriesOK == 2 && owed2.Out.TriesOK == 2, "abandoned orders: both Tries OK"},
		{localOK.Out.Local == LocalOutCommitted && rec.decisions[localOK.GID].commit, "local: committed locally, then Commit"},
		{localKilled.Out.Local == LocalOutCommitted && rec.Txns.Get("initiator:local_committed_commit_lost") == 1, "local, killed: committed locally, Commit never sent"},
		{localRefused.Out.Local == LocalOutRolledBack, "local, refused: rolled back"},
	} {
		if !x.ok {
			t.Fatalf("clean run: want %s; outcomes: %+v %+v %+v %+v %+v", x.what, committed.Out, cancelFirst.Out, lateStrict.Out, orphan.Out, owed1.Out)
		}
	}
	opts := CheckOptions{Bound: 30 * time.Second, MinCommitted: 1}
	res, err := Check(ctx, c, rec, base, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) > 0 {
		t.Fatalf("clean run has violations: %v", res.Violations)
	}
	// The normal order and two local ones (the killed initiator's through
	// the decider) committed.
	if res.Progress.Owed != 1 || res.Progress.OwedCommitted != 1 || res.Progress.Committed != 3 {
		t.Fatalf("clean run: progress %+v, want 1 owed, 3 committed", res.Progress)
	}

	// Tamper. I1: the committed order's accounts fence says CANCELLED. I2,
	// I6: a stray effect moves money out of thin air. I5: a reservation
	// is left behind. I3: an abort is observed for a committed
	// transaction.
	acc := dbtest.Open(t, c.partDB[demo.BranchAccounts])
	exec := func(db *gorm.DB, q string, args ...any) {
		t.Helper()
		if err := db.Exec(q, args...).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(acc, "UPDATE settle_fence SET state = 'CANCELLED' WHERE gid = ?", committed.GID)
	exec(acc, "UPDATE demo_account SET balance = balance + 7 WHERE name = ?", shop.Rich[1])
	exec(acc, "UPDATE demo_account SET frozen = frozen + 3 WHERE name = ?", shop.Rich[2])
	rec.Observe(committed.GID, tccv1.TransactionState_TRANSACTION_STATE_ABORTED, "tamper")
	// I4: a transaction that never finishes.
	stuck := order(KindNormal, 0)
	rec.add(stuck)
	if _, err := c.DirectCoord[0].Begin(ctx, &tccv1.BeginRequest{Gid: stuck.GID, Timeout: durationpb.New(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// I5, Cancel before Try: the Try was accepted after the Cancel
	// answered OK, and the fence shows it applied.
	cancelFirst.Out.HangingTry = ReplyOK
	exec(acc, "UPDATE settle_fence SET tried = 1 WHERE gid = ?", cancelFirst.GID)
	// I5, late Try: accepted after the Cancel was acknowledged; and one
	// accepted (as if it overtook the Cancel) that the fence does not
	// show tried, then cancelled.
	lateStrict.Out.LateTry = ReplyOK
	lateLoose.Out.LateBranchCancelled, lateLoose.Out.LateTry = false, ReplyOK
	// The order service's rows (I1, I2, I6 with the initiator's own
	// table): the committed local order loses its decision row, a stray
	// order row appears, and the killed initiator's order row changes.
	orders := c.orders.db
	exec(orders, "DELETE FROM settle_decision WHERE gid = ?", localOK.GID)
	exec(orders, "INSERT INTO demo_order (gid, user_name, sku, qty, amount, created_us) VALUES ('stray', 'x', 'pen', 1, 1, 0)")
	exec(orders, "UPDATE demo_order SET amount = amount + 1 WHERE gid = ?", localKilled.GID)
	// I7: the orphan's tombstone is gone.
	exec(dbtest.Open(t, c.coordDB), "DELETE FROM transaction_record WHERE gid = ?", orphan.GID)
	// Progress: two orders owed a commit that aborted, one of them with
	// its Commit refused before the deadline; and fewer commits than
	// required.
	for _, o := range []*Order{owed1, owed2} {
		o.Kind = KindNormal
		o.Out.CommitAt, o.Out.Commit, o.Out.CommitReplyAt = o.Out.BeganAt.Add(time.Second), ReplyUnknown, o.Out.BeganAt.Add(5*time.Second)
	}
	owed1.Out.Commit, owed1.Out.CommitReplyAt = ReplyRefused, owed1.Out.BeganAt.Add(1500*time.Millisecond)
	opts.MinCommitted = 5
	// A crash: the inventory participant dies of a SIGKILL the harness did
	// not send.
	killBehindHarness(t, c.parts[demo.BranchInventory].proc)
	for end := time.Now().Add(10 * time.Second); ; {
		if exits, _ := c.Crashes(); len(exits) > 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the participant's exit was not recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Harness errors: an unexplained one fails, an explained one does not.
	c.NoteHarnessError("tamper: unexplained", errors.New("restart failed"), "")
	c.NoteHarnessError("tamper: explained", errors.New("exited before serving"), "the armed fault point after_begin was reached")

	opts.Bound = 3 * time.Second
	res, err = Check(ctx, c, rec, base, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(res.Violations, "\n")
	t.Logf("violations reported after tampering:\n%s", got)
	for _, want := range []string{
		"I1 " + committed.GID,
		"I2 account " + shop.Rich[1],
		"I3 " + committed.GID,
		"I4 " + stuck.GID,
		"I5 accounts:",
		"I5 " + cancelFirst.GID + "/accounts: Try accepted after its Cancel had answered OK",
		"I5 " + cancelFirst.GID + "/accounts: the Cancel answered OK before the Try was sent, but the fence is CANCELLED (tried true)",
		"I5 " + lateStrict.GID + "/accounts: late Try accepted after the participant had acknowledged the Cancel",
		"I5 " + lateLoose.GID + "/inventory: late Try accepted but the fence is CANCELLED (tried false)",
		"I6 money",
		"I7 " + orphan.GID + ": presumed aborted at check-back",
		"PROGRESS " + owed1.GID + ": Commit refused",
		"PROGRESS: 1 of 3 orders owed a commit committed, below the floor of 2",
		"PROGRESS: 3 transactions committed, want at least 5",
		"I1-local " + localOK.GID + ": COMMITTED at the coordinator but the decision row is \"\"",
		"I1-local " + localOK.GID + ": order row present true but decision row \"\"",
		"I2-local stray: an order row for an order the workload never started",
		"I6-local: the order rows add up to",
		"CRASH participant-inventory",
		"HARNESS tamper: unexplained",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violations do not report %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "tamper: explained") {
		t.Errorf("an explained harness error was reported as a violation:\n%s", got)
	}
	if len(res.CrashTails) == 0 {
		t.Error("no output tail for the crash")
	}
}

// killBehindHarness SIGKILLs p's current process without telling p, as a
// crash would end it.
func killBehindHarness(t *testing.T, p *Proc) {
	t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		t.Fatalf("%s is not running", p.Name)
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// TestCoverageReportsMissingKinds: the coverage check names each required
// kind that did not fire, and the requirements follow the cluster's shape.
func TestCoverageReportsMissingKinds(t *testing.T) {
	one := RequiredKinds(1, true, 20)
	two := RequiredKinds(2, true, 20)
	for _, k := range []string{string(FaultCoordPause), string(FaultTakeover)} {
		if !contains(two, k) || contains(one, k) {
			t.Errorf("%s: required with 2 coordinators %v, with 1 %v; want only with 2", k, contains(two, k), contains(one, k))
		}
	}
	for _, k := range []string{"net_partition_call:" + LinkCheckBack, string(FaultCoordPointHit) + ":before_record_round", string(FaultRetryCap), string(FaultDropReply)} {
		if !contains(two, k) {
			t.Errorf("%s not required", k)
		}
	}
	if contains(RequiredKinds(1, false, 0), string(FaultRetryCap)) || contains(RequiredKinds(1, false, 0), string(FaultCheckBackCut)) {
		t.Error("the retry cap or the check-back cut is required where it cannot fire")
	}
	fired := map[string]int64{}
	for _, k := range two {
		fired[k] = 1
	}
	if m := MissingKinds(two, fired); len(m) != 0 {
		t.Fatalf("all fired, missing %v", m)
	}
	delete(fired, string(FaultTakeover))
	fired[string(FaultCoordPointHit)+":after_decision"] = 0
	if m := MissingKinds(two, fired); strings.Join(m, ",") != string(FaultCoordPointHit)+":after_decision,"+string(FaultTakeover) {
		t.Fatalf("missing %v", m)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
