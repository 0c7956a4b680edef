package faulttest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/demo"
)

// Config configures one run of the suite.
type Config struct {
	// Seed drives the workload and the fault schedule; print it and pass
	// it again to replay a run's choices (process and network timing still
	// vary between runs).
	Seed uint64
	// Duration is how long the workload runs before healing.
	Duration time.Duration
	// Concurrency is the number of concurrent initiators.
	Concurrency int
	// Backend names the database kind ("sqlite", "mysql" or "postgres"), for the
	// summary.
	Backend string
	// NewDB returns a fresh, empty database spec; name says what it is for
	// ("coordinator", "accounts", "inventory"). The caller drops it.
	NewDB func(name string) (string, error)
	// Coordinators is 1 or 2 (two need a shared MySQL or PostgreSQL database; the pause
	// fault needs two).
	Coordinators int
	// Bins are the built programs.
	Bins *Binaries
	// Timing tunes the processes; zero means DefaultTiming.
	Timing Timing
	// Odds are the per-call network fault odds on every proxy.
	Odds Odds
	// ProcessFaultEvery is the mean pause between process and link faults
	// (0: none).
	ProcessFaultEvery time.Duration
	// CoverageFirst runs the coverage schedule before the random one: it
	// fires every kind of RequiredKinds in turn. The workload then lasts
	// at least until the schedule is done (bounded by coverageBound).
	CoverageFirst bool
	// QuiesceBound bounds the wait for quiescence after healing.
	QuiesceBound time.Duration
	// MinCommitted is the least number of transactions that must commit
	// (0: none required).
	MinCommitted int
	// CommitFloor is the least fraction of the orders owed a commit that
	// must commit (0: DefaultCommitFloor).
	CommitFloor float64
	// CoordEnv is added to every coordinator's environment, unknown to the
	// fault schedule (tests: a product that panics).
	CoordEnv []string
	// Log receives progress lines (may be nil).
	Log io.Writer
}

// coverageBound is how much longer than Duration the workload may run
// while the coverage schedule is not done.
const coverageBound = 2 * time.Minute

// DefaultOdds are the per-call network faults of a run.
var DefaultOdds = Odds{Delay: 0.05, MaxDelay: 150 * time.Millisecond, Drop: 0.02, DropReply: 0.02, Duplicate: 0.03}

// Report is the outcome of a run.
type Report struct {
	Config    Config
	Result    Result
	Faults    map[string]int64
	Txns      map[string]int64
	Orders    int
	Elapsed   time.Duration
	Workload  time.Duration // how long the workload ran
	CheckBack bool
	Logs      string // process output tails when there were violations
	// Required are the fault kinds the run had to fire; Missing those it
	// did not (each is a COVERAGE violation). Coverage is checked in runs
	// with a fault schedule.
	Required, Missing []string
	CoverageChecked   bool
}

// Violations is the number of violations: invariants, progress, crashes,
// unexplained harness errors and coverage. Any fails the run.
func (r *Report) Violations() int { return len(r.Result.Violations) }

// String is the printed summary.
func (r *Report) String() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "settle fault run: seed=%d backend=%s coordinators=%d concurrency=%d workload=%s total=%s\n",
		c.Seed, c.Backend, c.Coordinators, c.Concurrency, r.Workload.Round(time.Second), r.Elapsed.Round(time.Second))
	if c.Bins != nil && c.Bins.Revision != "" {
		fmt.Fprintf(&b, "code: %s\n", c.Bins.Revision)
	}
	fmt.Fprintf(&b, "transactions: %d started; final coordinator states:", r.Orders)
	for _, k := range []string{"COMMITTED", "ABORTED", "NOT_FOUND", "TRYING", "COMMITTING", "ABORTING", "UNREADABLE"} {
		if n := r.Result.Final[k]; n > 0 {
			fmt.Fprintf(&b, " %s %d", k, n)
		}
	}
	b.WriteString("\n")
	p := r.Result.Progress
	fmt.Fprintf(&b, "progress: %d committed (at least %d required); orders owed a commit %d, committed %d (floor %d = %.0f%%), no answer to Commit before the deadline %d\n",
		p.Committed, p.MinCommitted, p.Owed, p.OwedCommitted, p.Floor, 100*commitFloor(c.CommitFloor), p.OwedLate)
	causes := map[string]int64{}
	for k, v := range r.Result.AbortCauses {
		causes[k] = int64(v)
	}
	b.WriteString("aborts by cause (the coordinator's abort reason):\n")
	b.WriteString(formatCounts(causes, "", "  "))
	b.WriteString("order kinds and initiator outcomes:\n")
	b.WriteString(formatCounts(r.Txns, "", "  "))
	var total int64
	for k, v := range r.Faults {
		if !strings.Contains(k, "_hit:") && k != string(FaultTakeover) && k != string(FaultRetryCap) && !strings.HasPrefix(k, string(FaultDown)+":") {
			total += v
		}
	}
	fmt.Fprintf(&b, "faults injected (%d; with what they caused: fault points reached, takeovers, rounds deferred by -participant-retry-rate %g, calls refused per cut link):\n",
		total, c.Timing.ParticipantRetryRate)
	b.WriteString(formatCounts(r.Faults, "", "  "))
	if !r.CheckBack {
		b.WriteString("participant -> coordinator link: not proxied (participant-demo serve has no -coordinator flag)\n")
	}
	switch {
	case !r.CoverageChecked:
		b.WriteString("coverage: not checked (no fault schedule)\n")
	case len(r.Missing) == 0:
		fmt.Fprintf(&b, "coverage: all %d required fault kinds fired\n", len(r.Required))
	default:
		fmt.Fprintf(&b, "coverage: %d of %d required fault kinds did not fire:\n%s", len(r.Missing), len(r.Required), formatKinds(r.Missing, "  "))
	}
	if n := len(r.Result.HarnessErrors); n > 0 {
		expected := map[string]int64{}
		var unexplained []HarnessError
		for _, h := range r.Result.HarnessErrors {
			if h.Fails() {
				unexplained = append(unexplained, h)
			} else {
				expected[h.Cause]++
			}
		}
		fmt.Fprintf(&b, "harness errors: %d, %d unexplained (each a violation); expected ones by cause:\n", n, len(unexplained))
		b.WriteString(formatCounts(expected, "", "  "))
		for _, h := range unexplained {
			fmt.Fprintf(&b, "  %s\n", h)
		}
	}
	fmt.Fprintf(&b, "quiescence after healing: %s (reached: %v)\n", r.Result.Quiescence.Round(time.Millisecond), r.Result.Quiet)
	counts := map[string]int{}
	for _, v := range r.Result.Violations {
		inv, _, _ := strings.Cut(v, " ")
		inv = strings.TrimSuffix(strings.TrimSuffix(inv, ":"), "-local") // I1-local counts as I1
		counts[inv]++
	}
	other := len(r.Result.Violations)
	var parts []string
	for _, k := range []string{"I1", "I2", "I3", "I4", "I5", "I6", "I7", "PROGRESS", "CRASH", "HARNESS", "COVERAGE"} {
		label := k
		if len(k) > 2 {
			label = strings.ToLower(k)
		}
		parts = append(parts, fmt.Sprintf("%s %d", label, counts[k]))
		other -= counts[k]
	}
	fmt.Fprintf(&b, "invariants: %s, other %d violations\n", strings.Join(parts, ", "), other)
	for i, v := range r.Result.Violations {
		if i == 50 {
			fmt.Fprintf(&b, "  ... %d more\n", len(r.Result.Violations)-50)
			break
		}
		fmt.Fprintf(&b, "  VIOLATION %s\n", v)
	}
	for _, t := range r.Result.CrashTails {
		fmt.Fprintf(&b, "crash output:\n%s\n", t)
	}
	fmt.Fprintf(&b, "violations: %d\n", len(r.Result.Violations))
	return b.String()
}

func commitFloor(f float64) float64 {
	if f <= 0 {
		return DefaultCommitFloor
	}
	return f
}

// setupShop gives the participants the shop's users and stock.
func setupShop(ctx context.Context, partDB map[string]string, shop Shop) error {
	db, _, err := database.Open(partDB[demo.BranchAccounts])
	if err != nil {
		return err
	}
	for _, u := range shop.Rich {
		if err := db.WithContext(ctx).Exec("INSERT INTO demo_account (name, balance, frozen) VALUES (?, ?, 0)", u, shop.RichBalance).Error; err != nil {
			_ = database.Close(db)
			return fmt.Errorf("setup accounts: %w", err)
		}
	}
	for _, u := range shop.Poor {
		if err := db.WithContext(ctx).Exec("INSERT INTO demo_account (name, balance, frozen) VALUES (?, ?, 0)", u, shop.PoorBalance).Error; err != nil {
			_ = database.Close(db)
			return fmt.Errorf("setup accounts: %w", err)
		}
	}
	_ = database.Close(db)
	if db, _, err = database.Open(partDB[demo.BranchInventory]); err != nil {
		return err
	}
	defer database.Close(db)
	for sku, n := range shop.Stock {
		res := db.WithContext(ctx).Exec("UPDATE demo_stock SET stock = ? WHERE sku = ?", n, sku)
		if res.Error != nil {
			return fmt.Errorf("setup stock: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			if err := db.WithContext(ctx).Exec("INSERT INTO demo_stock (sku, stock, reserved, sold) VALUES (?, ?, 0, 0)", sku, n).Error; err != nil {
				return fmt.Errorf("setup stock: %w", err)
			}
		}
	}
	return nil
}

// Run starts a cluster, runs the workload under faults for cfg.Duration,
// heals, waits for quiescence and checks the invariants. A non-nil error
// means the run could not be carried out (the harness failed); invariant
// violations are in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Timing == (Timing{}) {
		cfg.Timing = DefaultTiming
	}
	if cfg.Coordinators < 1 {
		cfg.Coordinators = 1
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 8
	}
	if cfg.QuiesceBound <= 0 {
		cfg.QuiesceBound = 60 * time.Second
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, time.Now().Format("15:04:05.000")+" "+format+"\n", args...)
		}
	}
	began := time.Now()
	logf("seed %d (replay with -seed %d)", cfg.Seed, cfg.Seed)
	coordDB, err := cfg.NewDB("coordinator")
	if err != nil {
		return nil, err
	}
	partDB := map[string]string{}
	for _, b := range Branches {
		if partDB[b], err = cfg.NewDB(b); err != nil {
			return nil, err
		}
	}
	ordersDB, err := cfg.NewDB("orders")
	if err != nil {
		return nil, err
	}
	faults := NewStats()
	c, err := StartCluster(ClusterConfig{Bins: cfg.Bins, Timing: cfg.Timing, Coordinators: cfg.Coordinators,
		CoordDB: coordDB, PartDB: partDB, OrdersDB: ordersDB, Seed: cfg.Seed, Faults: faults, CoordEnv: cfg.CoordEnv})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	shop := DefaultShop()
	if err := setupShop(ctx, partDB, shop); err != nil {
		return nil, err
	}
	base, err := readSnapshots(ctx, partDB)
	if err != nil {
		return nil, err
	}
	logf("cluster up: %d coordinator(s), participants accounts and inventory, %d proxies; check-back proxied: %v",
		cfg.Coordinators, len(c.proxies()), c.CheckBackProxied())

	rec := NewRecorder()
	in := &Initiator{C: c, Rec: rec, Timing: cfg.Timing}
	c.SetOdds(cfg.Odds)
	// The workload lasts cfg.Duration, and at least until the coverage
	// schedule is done (bounded).
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	workStart := time.Now()
	coverageDone := make(chan struct{})
	if !cfg.CoverageFirst {
		close(coverageDone)
	}
	go func() {
		if !sleepCtx(wctx, cfg.Duration) {
			return
		}
		select {
		case <-coverageDone:
		case <-wctx.Done():
		case <-time.After(coverageBound):
			logf("the coverage schedule is not done %s after the workload's duration: ending the workload", coverageBound)
		}
		stop()
	}()
	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(w)))
			for n := 0; wctx.Err() == nil; n++ {
				o := GenOrder(rng, shop, cfg.Seed, w, n, cfg.Coordinators)
				// Each order finishes its calls even if the workload
				// ends meanwhile (bounded by the retry budget).
				in.Run(context.WithoutCancel(wctx), &o)
			}
		}()
	}
	// A watcher polls recent transactions through the proxies, so that
	// decisions are observed while faults happen (I3), not only at the end.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(cfg.Seed, 998))
		for sleepCtx(wctx, 50*time.Millisecond) {
			orders := rec.Orders()
			if len(orders) == 0 {
				continue
			}
			o := orders[len(orders)-1-rng.IntN(min(len(orders), 200))]
			cctx, cancel := context.WithTimeout(wctx, time.Second)
			r, err := c.CoordClients[rng.IntN(len(c.CoordClients))].GetTransaction(cctx, &tccv1.GetTransactionRequest{Gid: o.GID})
			cancel()
			if err == nil {
				rec.Observe(o.GID, r.GetTransaction().GetState(), "watcher poll")
				rec.Txns.AddName("watcher:polls", 1)
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		sched := rand.New(rand.NewPCG(cfg.Seed, 999))
		if cfg.CoverageFirst {
			orphan := func() {
				o := Order{GID: fmt.Sprintf("ft-%x-coverage-orphan", cfg.Seed), Kind: KindOrphanTry, User: shop.Rich[0],
					SKU: "pen", Qty: 1, Amount: shop.Prices["pen"]}
				in.Run(context.WithoutCancel(wctx), &o)
			}
			killed := func() {
				o := Order{GID: fmt.Sprintf("ft-%x-coverage-local-killed", cfg.Seed), Kind: KindLocal, Step: LocalKilled,
					User: shop.Rich[0], SKU: "pen", Qty: 1, Amount: shop.Prices["pen"]}
				in.Run(context.WithoutCancel(wctx), &o)
			}
			coverage(wctx, c, cfg.Timing, sched, orphan, killed, logf)
			close(coverageDone)
		}
		if cfg.ProcessFaultEvery <= 0 {
			return
		}
		for {
			d := time.Duration(float64(cfg.ProcessFaultEvery) * (0.5 + sched.Float64()))
			if !sleepCtx(wctx, d) {
				return
			}
			// Its errors are recorded, classified, by the cluster.
			_ = injectProcessFault(wctx, c, sched, cfg.Timing, logf)
		}
	}()
	progress := time.NewTicker(30 * time.Second)
	func() {
		defer progress.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-progress.C:
				logf("%d orders started, %d faults so far", len(rec.Orders()), sum(faults.Snapshot()))
			}
		}
	}()
	wg.Wait()
	stop()
	workload := time.Since(workStart)
	logf("workload done: %d orders in %s; healing", len(rec.Orders()), workload.Round(time.Millisecond))
	// An interrupted run (ctx cancelled) still heals and checks what it
	// did, bounded by QuiesceBound.
	ctx, cancelCheck := context.WithTimeout(context.WithoutCancel(ctx), cfg.QuiesceBound+time.Minute)
	defer cancelCheck()
	if err := c.Heal(); err != nil {
		logf("heal: %v", err) // recorded, classified, by the cluster
	}
	res, err := Check(ctx, c, rec, base, CheckOptions{Bound: cfg.QuiesceBound, TxTimeout: cfg.Timing.TxTimeout,
		MinCommitted: cfg.MinCommitted, CommitFloor: cfg.CommitFloor})
	if err != nil {
		return nil, err
	}
	rep := &Report{Config: cfg, Result: res, Faults: faults.Snapshot(), Txns: rec.Txns.Snapshot(), Orders: len(rec.Orders()),
		Elapsed: time.Since(began), Workload: workload, CheckBack: c.CheckBackProxied(),
		Required: RequiredKinds(cfg.Coordinators, c.CheckBackProxied(), cfg.Timing.ParticipantRetryRate)}
	// A run with faults must fire every kind (the coverage schedule makes
	// sure of it; without it, the random schedule must have).
	if cfg.CoverageFirst || cfg.ProcessFaultEvery > 0 {
		rep.CoverageChecked = true
		rep.Missing = MissingKinds(rep.Required, rep.Faults)
		for _, k := range rep.Missing {
			rep.Result.Violations = append(rep.Result.Violations, "COVERAGE "+k+": did not fire")
		}
	}
	if rep.Violations() > 0 {
		rep.Logs = c.Logs(6000)
	}
	return rep, nil
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
