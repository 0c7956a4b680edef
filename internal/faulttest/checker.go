package faulttest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/demo"
	"github.com/settle-tcc/settle/internal/tcc"
)

// Fence states as the participants store them.
const (
	fenceTried     = "TRIED"
	fenceConfirmed = "CONFIRMED"
	fenceCancelled = "CANCELLED"
)

// fence is one fence row of a participant (one branch per gid).
type fence struct {
	state string
	// tried: a Try was applied (the SDK's tried column; false for a null
	// compensation, the row a Cancel writes when no Try came first).
	tried bool
}

// readFences returns gid -> fence row of every row of the participant
// SDK's fence table (settle_fence) in db.
func readFences(ctx context.Context, db *gorm.DB) (map[string]fence, error) {
	rows, err := db.WithContext(ctx).Raw("SELECT gid, state, tried FROM settle_fence").Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]fence{}
	for rows.Next() {
		var gid, st string
		var tried int
		if err := rows.Scan(&gid, &st, &tried); err != nil {
			return nil, err
		}
		out[gid] = fence{state: strings.ToUpper(st), tried: tried != 0}
	}
	return out, rows.Err()
}

// Baseline is what the participants held before the workload.
type Baseline struct {
	Accounts demo.Snapshot // from the accounts participant's database
	Stock    demo.Snapshot // from the inventory participant's database
}

func readSnapshots(ctx context.Context, partDB map[string]string) (Baseline, error) {
	var b Baseline
	for _, x := range []struct {
		branch string
		dst    *demo.Snapshot
	}{{demo.BranchAccounts, &b.Accounts}, {demo.BranchInventory, &b.Stock}} {
		db, _, err := database.Open(partDB[x.branch])
		if err != nil {
			return b, err
		}
		s, err := demo.Totals(ctx, db)
		_ = database.Close(db)
		if err != nil {
			return b, err
		}
		*x.dst = s
	}
	return b, nil
}

// Result is the checker's verdict.
type Result struct {
	// Final counts final coordinator states (COMMITTED, ABORTED, NOT_FOUND,
	// or an unfinished state).
	Final map[string]int
	// AbortCauses counts the ABORTED transactions by the coordinator's
	// abort reason.
	AbortCauses map[string]int
	// Progress is what the progress rules were computed from.
	Progress Progress
	// Quiescence is how long after healing every transaction was final.
	Quiescence time.Duration
	// Quiet is false when the bound passed first.
	Quiet bool
	// Violations lists every violation found; each entry starts with the
	// invariant or check it breaks: I1..I7, PROGRESS, CRASH, HARNESS,
	// COVERAGE, or a scenario (S7, S8, S11).
	Violations []string
	// CrashTails holds the output tail of every crashed process life.
	CrashTails []string
	// HarnessErrors lists the harness's own errors with their
	// classification (the unexplained ones are also violations).
	HarnessErrors []HarnessError
}

// Progress is what the progress rules count. An order is owed a commit
// when its kind means to commit (normal, duplicate), both its Tries
// answered OK and its Commit was sent.
type Progress struct {
	Committed int // transactions COMMITTED at the coordinator
	Owed      int // orders owed a commit
	// OwedCommitted: owed orders that committed.
	OwedCommitted int
	// OwedLate: owed orders whose Commit got no definitive answer before
	// the deadline (unknown, or answered after it): the Commit raced the
	// deadline and may lose.
	OwedLate int
	// Floor is the least OwedCommitted accepted: CommitFloor of Owed.
	Floor int
	// MinCommitted is the least Committed accepted.
	MinCommitted int
}

// CheckOptions are the run-level expectations of Check.
type CheckOptions struct {
	// Bound bounds the wait for quiescence.
	Bound time.Duration
	// TxTimeout is the orders' Begin timeout (their deadline).
	TxTimeout time.Duration
	// MinCommitted is the least number of transactions that must commit.
	MinCommitted int
	// CommitFloor is the least fraction of the orders owed a commit that
	// must commit (0: DefaultCommitFloor).
	CommitFloor float64
}

// DefaultCommitFloor is the least fraction of the orders owed a commit
// that must commit. Owed orders that do not commit are the ones whose
// Commit lost to the deadline (4 s) under faults: a coordinator killed,
// restarting at a fault point or paused, a cut link. Runs commit 90-99 %
// of them; a product that commits nothing, or rolls back half of its
// commits, does not reach a half.
const DefaultCommitFloor = 0.5

// deadlineMargin is taken off an order's deadline estimate (BeganAt +
// timeout, a lower bound of the coordinator's deadline) before the
// progress rule calls a refusal premature: wall clocks of one machine.
const deadlineMargin = 100 * time.Millisecond

// finalState reads the coordinator's state of every gid until all are
// COMMITTED, ABORTED or unknown (never begun), or until bound passes.
func finalState(ctx context.Context, coord tccv1.CoordinatorServiceClient, rec *Recorder, gids []string, bound time.Duration) (map[string]*tccv1.Transaction, map[string]bool, bool) {
	states := make(map[string]*tccv1.Transaction, len(gids))
	missing := map[string]bool{}
	pending := append([]string(nil), gids...)
	deadline := time.Now().Add(bound)
	for len(pending) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		var mu sync.Mutex
		var next []string
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for _, gid := range pending {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				r, err := coord.GetTransaction(cctx, &tccv1.GetTransactionRequest{Gid: gid})
				cancel()
				mu.Lock()
				defer mu.Unlock()
				switch {
				case status.Code(err) == codes.NotFound:
					missing[gid] = true
					delete(states, gid)
				case err != nil:
					next = append(next, gid)
				default:
					st := r.GetTransaction().GetState()
					states[gid] = r.GetTransaction()
					rec.Observe(gid, st, "checker poll")
					if st != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED && st != tccv1.TransactionState_TRANSACTION_STATE_ABORTED {
						next = append(next, gid)
					}
				}
			}()
		}
		wg.Wait()
		pending = next
		if len(pending) > 0 {
			sleepCtx(ctx, 250*time.Millisecond)
		}
	}
	return states, missing, len(pending) == 0
}

// Check heals nothing itself: call it after Cluster.Heal. It waits for
// quiescence (at most o.Bound), then verifies I1-I7 from the
// participants' own tables, the coordinator's tombstones and the
// check-backs seen on the wire, I3 from the decisions observed during the
// run, progress from the orders' outcomes, and reports every crash and
// unexplained harness error of the cluster.
func Check(ctx context.Context, c *Cluster, rec *Recorder, base Baseline, o CheckOptions) (Result, error) {
	res := Result{Final: map[string]int{}, AbortCauses: map[string]int{}}
	bound := o.Bound
	if o.TxTimeout <= 0 {
		o.TxTimeout = DefaultTiming.TxTimeout
	}
	if o.CommitFloor <= 0 {
		o.CommitFloor = DefaultCommitFloor
	}
	orders := rec.Orders()
	gids := make([]string, len(orders))
	for i, o := range orders {
		gids[i] = o.GID
	}
	start := time.Now()
	txs, missing, quiet := finalState(ctx, c.DirectCoord[0], rec, gids, bound)
	res.Quiescence, res.Quiet = time.Since(start), quiet
	states := make(map[string]tccv1.TransactionState, len(txs))
	for gid, tx := range txs {
		states[gid] = tx.GetState()
	}
	violate := func(format string, args ...any) {
		res.Violations = append(res.Violations, fmt.Sprintf(format, args...))
	}

	// Participants converge by themselves once the coordinator has
	// finished; give the check-back and in-flight calls a moment.
	fences := map[string]map[string]fence{}
	var after Baseline
	sawQuiet := false // no TRIED fence at the previous read either
	for wait := time.Now().Add(max(bound-res.Quiescence, 5*time.Second)); ; {
		var err error
		for _, b := range Branches {
			db, _, oerr := database.Open(c.partDB[b])
			if oerr != nil {
				return res, oerr
			}
			fences[b], err = readFences(ctx, db)
			_ = database.Close(db)
			if err != nil {
				return res, fmt.Errorf("read fences of %s: %w", b, err)
			}
		}
		if after, err = readSnapshots(ctx, c.partDB); err != nil {
			return res, err
		}
		tried := false
		for _, b := range Branches {
			for _, f := range fences[b] {
				tried = tried || f.state == fenceTried
			}
		}
		if !tried && after.Accounts.Frozen == 0 && after.Stock.Reserved == 0 || !tried && sawQuiet || time.Now().After(wait) {
			break
		}
		sawQuiet = !tried
		sleepCtx(ctx, 250*time.Millisecond)
	}
	// A gid unknown at the first poll may be known now: a participant
	// that still held its Try then (an orphan whose check-back was
	// refused while its coordinator was down) has checked back since, and
	// the coordinator recorded the presumed abort. Read those again, so
	// that the checks below see the tombstone rather than a gid the
	// coordinator "no longer knows".
	var unknownGIDs []string
	for gid := range missing {
		unknownGIDs = append(unknownGIDs, gid)
	}
	if len(unknownGIDs) > 0 {
		again, stillMissing, _ := finalState(ctx, c.DirectCoord[0], rec, unknownGIDs, 5*time.Second)
		for gid, tx := range again {
			txs[gid], states[gid] = tx, tx.GetState()
			if !stillMissing[gid] {
				delete(missing, gid)
			}
		}
	}

	// Per gid: I1 (all or nothing, from the participants' tables and
	// against the coordinator's outcome), I4 (finished), I5 (no TRIED
	// fence).
	spent := map[string]int64{}
	sold := map[string]int64{}
	for _, o := range orders {
		st, found := states[o.GID]
		switch {
		case missing[o.GID]:
			res.Final["NOT_FOUND"]++
		case found:
			res.Final[strings.TrimPrefix(st.String(), "TRANSACTION_STATE_")]++
			if st == tccv1.TransactionState_TRANSACTION_STATE_ABORTED {
				res.AbortCauses[txs[o.GID].GetAbortReason()]++
			}
		default:
			res.Final["UNREADABLE"]++
		}
		fenceA, fenceI := fences[demo.BranchAccounts][o.GID], fences[demo.BranchInventory][o.GID]
		fa, fi := fenceA.state, fenceI.state
		confirmed := 0
		for _, f := range []string{fa, fi} {
			if f == fenceConfirmed {
				confirmed++
			}
			if f == fenceTried {
				violate("I5 %s: a branch is still TRIED (reservation held) after quiescence (coordinator: %v)", o.GID, st)
			}
		}
		if confirmed == 1 {
			violate("I1 %s: accounts %q, inventory %q: one branch confirmed, the other not", o.GID, fa, fi)
		}
		switch {
		case missing[o.GID]:
			if fa != "" && fa != fenceCancelled || fi != "" && fi != fenceCancelled {
				violate("I1 %s: unknown to the coordinator but participants hold accounts %q, inventory %q", o.GID, fa, fi)
			}
		case st == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED:
			if confirmed != 2 {
				violate("I1 %s: COMMITTED but accounts %q, inventory %q", o.GID, fa, fi)
			}
		case st == tccv1.TransactionState_TRANSACTION_STATE_ABORTED:
			if confirmed != 0 {
				violate("I1 %s: ABORTED but accounts %q, inventory %q", o.GID, fa, fi)
			}
		case found:
			violate("I4 %s: still %v after quiescence bound %s", o.GID, st, bound)
		default:
			violate("I4 %s: state unreadable after quiescence bound %s", o.GID, bound)
		}
		// The coordinator's own view must agree with its outcome (a stale
		// owner writing over a newer one would show here), and nothing
		// may need an operator: every fault was transient.
		if tx := txs[o.GID]; tx != nil {
			want := tccv1.BranchState_BRANCH_STATE_UNSPECIFIED
			switch st {
			case tccv1.TransactionState_TRANSACTION_STATE_COMMITTED:
				want = tccv1.BranchState_BRANCH_STATE_CONFIRMED
			case tccv1.TransactionState_TRANSACTION_STATE_ABORTED:
				want = tccv1.BranchState_BRANCH_STATE_CANCELLED
			}
			for _, br := range tx.GetBranches() {
				if want != tccv1.BranchState_BRANCH_STATE_UNSPECIFIED && br.GetState() != want {
					violate("I1 %s: coordinator says %v but its branch %s is %v", o.GID, st, br.GetBranchId(), br.GetState())
				}
			}
			if tx.GetNeedsAttention() {
				violate("S11 %s: flagged needs_attention (%v, last error %q)", o.GID, st, tx.GetLastError())
			}
		}
		if fa == fenceConfirmed {
			spent[o.User] += o.Amount
		}
		if fi == fenceConfirmed {
			sold[o.SKU] += o.Qty
		}
	}
	checkRefusals(orders, fences, states, violate)
	checkBacks := c.CheckBacks()
	if err := checkPresumedAborts(ctx, c, orders, fences, checkBacks, violate); err != nil {
		return res, err
	}
	// Check-back answers are decisions observed too (I3).
	for gid, answers := range checkBacks {
		for _, a := range answers {
			switch a.Verdict {
			case tccv1.Verdict_VERDICT_CONFIRM:
				rec.Observe(gid, tccv1.TransactionState_TRANSACTION_STATE_COMMITTING, "check-back answer")
			case tccv1.Verdict_VERDICT_CANCEL:
				rec.Observe(gid, tccv1.TransactionState_TRANSACTION_STATE_ABORTING, "check-back answer")
			}
		}
	}
	if err := checkLocal(ctx, c, orders, states, missing, violate); err != nil {
		return res, err
	}
	res.Progress = checkProgress(orders, states, txs, o, violate)
	checkCrashes(c, &res, violate)

	// I3: the final state agrees with every decision observed.
	rec.mu.Lock()
	res.Violations = append(res.Violations, rec.violations...)
	for gid, d := range rec.decisions {
		st, ok := states[gid]
		if !ok {
			if missing[gid] {
				violate("I3 %s: %s observed (%s) but the coordinator no longer knows the transaction", gid, word(d.commit), d.source)
			}
			continue
		}
		if (st == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED) != d.commit && (st == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED || st == tccv1.TransactionState_TRANSACTION_STATE_ABORTED) {
			violate("I3 %s: %s observed (%s) but final state %v", gid, word(d.commit), d.source, st)
		}
	}
	rec.mu.Unlock()

	// Fence rows for gids the workload never started would mean a stray
	// effect.
	known := make(map[string]bool, len(gids))
	for _, g := range gids {
		known[g] = true
	}
	for _, b := range Branches {
		for gid := range fences[b] {
			if !known[gid] {
				violate("I2 %s/%s: fence row for a transaction the workload never started", gid, b)
			}
		}
	}

	// I2: each confirmed effect applied exactly once: every balance and
	// every sold count equals the baseline moved by the confirmed fences.
	var merchantGain int64
	for _, a := range base.Accounts.Accounts {
		want := a.Balance - spent[a.Name]
		merchantGain += spent[a.Name]
		if a.Name == demo.MerchantAccount {
			continue
		}
		if got := accountBalance(after.Accounts, a.Name); got != want {
			violate("I2 account %s: balance %d, want %d (baseline %d minus %d confirmed)", a.Name, got, want, a.Balance, spent[a.Name])
		}
	}
	if got, want := accountBalance(after.Accounts, demo.MerchantAccount), accountBalance(base.Accounts, demo.MerchantAccount)+merchantGain; got != want {
		violate("I2 merchant: balance %d, want %d", got, want)
	}
	for _, s := range base.Stock.Stock {
		got := stockOf(after.Stock, s.SKU)
		if got.Sold != s.Sold+sold[s.SKU] || got.Stock != s.Stock-sold[s.SKU] {
			violate("I2 sku %s: stock %d sold %d, want stock %d sold %d", s.SKU, got.Stock, got.Sold, s.Stock-sold[s.SKU], s.Sold+sold[s.SKU])
		}
	}
	// I5: nothing frozen or reserved.
	if after.Accounts.Frozen != 0 {
		violate("I5 accounts: %d cents still frozen", after.Accounts.Frozen)
	}
	if after.Stock.Reserved != 0 {
		violate("I5 inventory: %d units still reserved", after.Stock.Reserved)
	}
	// I6: conservation.
	if after.Accounts.Balance != base.Accounts.Balance {
		violate("I6 money: total %d, want %d", after.Accounts.Balance, base.Accounts.Balance)
	}
	for sku, g := range base.Stock.Goods {
		if after.Stock.Goods[sku] != g {
			violate("I6 goods %s: stock+sold %d, want %d", sku, after.Stock.Goods[sku], g)
		}
	}
	return res, nil
}

func accountBalance(s demo.Snapshot, name string) int64 {
	for _, a := range s.Accounts {
		if a.Name == name {
			return a.Balance
		}
	}
	return -1
}

func stockOf(s demo.Snapshot, sku string) demo.Stock {
	for _, st := range s.Stock {
		if st.SKU == sku {
			return st
		}
	}
	return demo.Stock{SKU: sku, Stock: -1, Sold: -1}
}

// checkRefusals checks the refused scenarios as invariants (I5): a Try
// sent after its branch's Cancel was acknowledged never reserves, and a
// late Try that was accepted is shown tried, then cancelled, by the fence.
//
// Rules, from the fence (participant/, docs/participant-protocol.md): a
// Cancel that finds no row writes CANCELLED with tried = 0, and a Try
// that finds any row is refused without a business change; a Try that
// finds no row writes TRIED with tried = 1, and a later Cancel moves it
// to CANCELLED, keeping tried = 1.
//   - cancel_first whose Cancel answered OK before the Try was sent: the
//     Try must be refused, and the branch's fence must end CANCELLED with
//     tried = 0;
//   - late_try whose Rollback reply showed the branch CANCELLED (the
//     participant acknowledged the Cancel) before the late Try was sent:
//     the same;
//   - late_try accepted otherwise (it overtook the Cancel): the fence
//     must end CANCELLED with tried = 1.
func checkRefusals(orders []*Order, fences map[string]map[string]fence, states map[string]tccv1.TransactionState, violate func(string, ...any)) {
	for _, o := range orders {
		switch o.Kind {
		case KindCancelFirst:
			if o.Out.CancelFirst != ReplyOK {
				continue
			}
			b := Branches[o.Step]
			f, ok := fences[b][o.GID]
			if o.Out.HangingTry == ReplyOK {
				violate("I5 %s/%s: Try accepted after its Cancel had answered OK (a hanging reservation)", o.GID, b)
			}
			if !ok || f.state != fenceCancelled || f.tried {
				violate("I5 %s/%s: the Cancel answered OK before the Try was sent, but the fence is %s, want CANCELLED with no Try applied", o.GID, b, f)
			}
		case KindLateTry:
			if o.Out.LateTry == ReplyNone {
				continue
			}
			b := Branches[o.Step]
			f, ok := fences[b][o.GID]
			switch {
			case o.Out.LateBranchCancelled:
				if o.Out.LateTry == ReplyOK {
					violate("I5 %s/%s: late Try accepted after the participant had acknowledged the Cancel (coordinator: %v)", o.GID, b, states[o.GID])
				}
				if !ok || f.state != fenceCancelled || f.tried {
					violate("I5 %s/%s: the Cancel was acknowledged before the late Try was sent, but the fence is %s, want CANCELLED with no Try applied", o.GID, b, f)
				}
			case o.Out.LateTry == ReplyOK:
				if !ok || f.state != fenceCancelled || !f.tried {
					violate("I5 %s/%s: late Try accepted but the fence is %s, want CANCELLED after the Try (tried, then cancelled)", o.GID, b, f)
				}
			}
		}
	}
}

func (f fence) String() string {
	if f.state == "" {
		return "missing"
	}
	return fmt.Sprintf("%s (tried %v)", f.state, f.tried)
}

// checkPresumedAborts checks I7: every gid the coordinator presumed
// aborted at a check-back has a stored tombstone. The presumed aborts are
// the orphan_try orders' check-backs seen on the participant ->
// coordinator proxies: the workload never begins an orphan's gid before
// the coordinator reports it ABORTED, so every answer for it is a
// presumed abort. An orphan whose Try was applied must have been checked
// back (nothing else can release it), every answer must be
// VERDICT_CANCEL, and the coordinator's database must hold the gid as an
// ABORTED tombstone.
func checkPresumedAborts(ctx context.Context, c *Cluster, orders []*Order, fences map[string]map[string]fence, checkBacks map[string][]CheckBackAnswer, violate func(string, ...any)) error {
	var db *gorm.DB
	for _, o := range orders {
		if o.Kind != KindOrphanTry {
			continue
		}
		answers := checkBacks[o.GID]
		f, ok := fences[demo.BranchAccounts][o.GID]
		if (ok && f.tried || o.Out.OrphanTry == ReplyOK) && len(answers) == 0 {
			violate("I7 %s: an orphan Try was applied (fence %s) but never checked back", o.GID, f)
		}
		for _, a := range answers {
			if a.Verdict != tccv1.Verdict_VERDICT_CANCEL {
				violate("I7 %s: check-back of a gid never begun answered %v (%v), want VERDICT_CANCEL (presumed abort)", o.GID, a.Verdict, a.State)
			}
		}
		if len(answers) == 0 {
			continue
		}
		if db == nil {
			var err error
			if db, err = c.coordinatorDB(); err != nil {
				return fmt.Errorf("open the coordinators' database: %w", err)
			}
		}
		var state string
		var tomb bool
		err := db.WithContext(ctx).Raw("SELECT state, tombstone FROM transaction_record WHERE gid = ?", o.GID).Row().Scan(&state, &tomb)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			violate("I7 %s: presumed aborted at check-back (%d answers) but no record is stored", o.GID, len(answers))
		case err != nil:
			return fmt.Errorf("read the tombstone of %s: %w", o.GID, err)
		case !tomb || state != string(tcc.StateAborted):
			violate("I7 %s: presumed aborted at check-back but stored as %s (tombstone %v), want an ABORTED tombstone", o.GID, state, tomb)
		}
	}
	return nil
}

// checkProgress checks that the run made the progress its workload
// planned. An order is owed a commit when its kind means to commit
// (normal, duplicate; not late_commit, which races the deadline on
// purpose), both its Tries answered OK and its Commit was sent. For such
// an order nothing may decide abort before its deadline: the initiator
// never rolls it back, check-back answers "pending" before the deadline,
// and the recovery loop aborts only after it. So:
//   - a Commit of an owed order refused before the deadline (BeganAt +
//     timeout, less a margin: a lower bound of the coordinator's deadline)
//     is a violation;
//   - at least CommitFloor of the owed orders must commit (those that do
//     not lost the race with the deadline under faults: their Commit got
//     no answer in time);
//   - at least MinCommitted transactions must commit.
//
// A Commit answered OK whose transaction ends aborted is an I3 violation.
func checkProgress(orders []*Order, states map[string]tccv1.TransactionState, txs map[string]*tccv1.Transaction, o CheckOptions, violate func(string, ...any)) Progress {
	p := Progress{MinCommitted: o.MinCommitted}
	for _, ord := range orders {
		committed := states[ord.GID] == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED
		if committed {
			p.Committed++
		}
		if ord.Kind != KindNormal && ord.Kind != KindDuplicate || ord.Out.TriesOK < len(Branches) || ord.Out.Commit == ReplyNone {
			continue
		}
		p.Owed++
		if committed {
			p.OwedCommitted++
		}
		deadline := ord.Out.BeganAt.Add(o.TxTimeout - deadlineMargin)
		inTime := ord.Out.Commit != ReplyUnknown && ord.Out.CommitReplyAt.Before(deadline)
		if !inTime {
			p.OwedLate++
		}
		if ord.Out.Commit == ReplyRefused && inTime {
			violate("PROGRESS %s: Commit refused %s before the deadline (final %v, abort reason %q): nothing may abort an order owed a commit before its deadline",
				ord.GID, deadline.Add(deadlineMargin).Sub(ord.Out.CommitReplyAt).Round(time.Millisecond), states[ord.GID], txs[ord.GID].GetAbortReason())
		}
	}
	p.Floor = int(math.Ceil(o.CommitFloor * float64(p.Owed)))
	if p.OwedCommitted < p.Floor {
		violate("PROGRESS: %d of %d orders owed a commit committed, below the floor of %d (%.0f%%; %d got no answer to Commit before their deadline)",
			p.OwedCommitted, p.Owed, p.Floor, 100*o.CommitFloor, p.OwedLate)
	}
	if p.Committed < p.MinCommitted {
		violate("PROGRESS: %d transactions committed, want at least %d", p.Committed, p.MinCommitted)
	}
	return p
}

// checkCrashes reports every process exit nobody caused, every panic a
// server recovered from, and every unexplained harness error.
func checkCrashes(c *Cluster, res *Result, violate func(string, ...any)) {
	exits, panics := c.Crashes()
	for _, ex := range exits {
		violate("CRASH %s", ex)
		res.CrashTails = append(res.CrashTails, fmt.Sprintf("--- %s\n%s", ex, lastBytes(ex.Tail, 3000)))
	}
	for _, line := range panics {
		violate("CRASH recovered panic: %s", lastBytes(line, 300))
		res.CrashTails = append(res.CrashTails, "--- recovered panic\n"+lastBytes(line, 3000))
	}
	res.HarnessErrors = c.HarnessErrors()
	for _, h := range res.HarnessErrors {
		if h.Fails() {
			violate("HARNESS %s", h)
		}
	}
}

// lastBytes returns the end of s, at most n bytes.
func lastBytes(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
