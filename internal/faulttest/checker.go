package faulttest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/demo"
)

// Fence states as the participants store them.
const (
	fenceTried     = "TRIED"
	fenceConfirmed = "CONFIRMED"
	fenceCancelled = "CANCELLED"
)

// fenceTables are the tables that have held the demo's fence, newest
// first.
var fenceTables = []string{"settle_fence", "demo_fence"}

// readFences returns gid -> state of every fence row in db (one
// participant, one branch per gid).
func readFences(ctx context.Context, db *gorm.DB) (map[string]string, error) {
	var lastErr error
	for _, table := range fenceTables {
		rows, err := db.WithContext(ctx).Raw("SELECT gid, state FROM " + table).Rows()
		if err != nil {
			lastErr = err
			continue
		}
		out := map[string]string{}
		for rows.Next() {
			var gid, st string
			if err := rows.Scan(&gid, &st); err != nil {
				rows.Close()
				return nil, err
			}
			out[gid] = strings.ToUpper(st)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, err
		}
		rows.Close()
		return out, nil
	}
	return nil, fmt.Errorf("no fence table found: %w", lastErr)
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
	// Quiescence is how long after healing every transaction was final.
	Quiescence time.Duration
	// Quiet is false when the bound passed first.
	Quiet bool
	// Violations lists every violation found; each entry starts with the
	// invariant or scenario it breaks (I1..I6, S5, S7, S8, S11).
	Violations []string
}

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
// quiescence (at most bound), then verifies I1-I6 from the participants'
// own tables, and I3 from the decisions observed during the run.
func Check(ctx context.Context, c *Cluster, rec *Recorder, base Baseline, bound time.Duration) (Result, error) {
	res := Result{Final: map[string]int{}}
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
	fences := map[string]map[string]string{}
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
			for _, st := range fences[b] {
				tried = tried || st == fenceTried
			}
		}
		if !tried && after.Accounts.Frozen == 0 && after.Stock.Reserved == 0 || !tried && sawQuiet || time.Now().After(wait) {
			break
		}
		sawQuiet = !tried
		sleepCtx(ctx, 250*time.Millisecond)
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
		default:
			res.Final["UNREADABLE"]++
		}
		fa, fi := fences[demo.BranchAccounts][o.GID], fences[demo.BranchInventory][o.GID]
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
