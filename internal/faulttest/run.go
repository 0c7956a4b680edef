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
	"github.com/settle-tcc/settle/internal/tcc"
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
	// Backend names the database kind ("sqlite" or "mysql"), for the
	// summary.
	Backend string
	// NewDB returns a fresh, empty database spec; name says what it is for
	// ("coordinator", "accounts", "inventory"). The caller drops it.
	NewDB func(name string) (string, error)
	// Coordinators is 1 or 2 (two need a shared MySQL database; the pause
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
	// QuiesceBound bounds the wait for quiescence after healing.
	QuiesceBound time.Duration
	// Log receives progress lines (may be nil).
	Log io.Writer
}

// DefaultOdds are the per-call network faults of a run.
var DefaultOdds = Odds{Delay: 0.05, MaxDelay: 150 * time.Millisecond, Drop: 0.02, DropReply: 0.02, Duplicate: 0.03}

// Report is the outcome of a run.
type Report struct {
	Config      Config
	Result      Result
	Faults      map[string]int64
	Txns        map[string]int64
	Orders      int
	Elapsed     time.Duration
	CheckBack   bool
	Logs        string // process output tails when there were violations
	ClusterErrs []string
	// RateLimitedRounds counts the coordinators' "delivery round failed"
	// log lines caused by -participant-retry-rate that their output tails
	// still hold: a lower bound, showing the cap was reached in the run.
	RateLimitedRounds int
}

// Violations is the number of invariant violations.
func (r *Report) Violations() int { return len(r.Result.Violations) }

// String is the printed summary.
func (r *Report) String() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "settle fault run: seed=%d backend=%s coordinators=%d concurrency=%d workload=%s total=%s\n",
		c.Seed, c.Backend, c.Coordinators, c.Concurrency, c.Duration, r.Elapsed.Round(time.Second))
	if c.Bins != nil && c.Bins.Revision != "" {
		fmt.Fprintf(&b, "code: %s\n", c.Bins.Revision)
	}
	fmt.Fprintf(&b, "transactions: %d started; final coordinator states:", r.Orders)
	for _, k := range []string{"COMMITTED", "ABORTED", "NOT_FOUND", "TRYING", "COMMITTING", "ABORTING", "UNREADABLE"} {
		if n := r.Result.Final[k]; n > 0 {
			fmt.Fprintf(&b, " %s %d", k, n)
		}
	}
	b.WriteString("\norder kinds and initiator outcomes:\n")
	b.WriteString(formatCounts(r.Txns, "", "  "))
	var total int64
	for _, v := range r.Faults {
		total += v
	}
	fmt.Fprintf(&b, "faults injected (%d):\n", total)
	b.WriteString(formatCounts(r.Faults, "", "  "))
	if !r.CheckBack {
		b.WriteString("participant -> coordinator link: not proxied (participant-demo serve has no -coordinator flag)\n")
	}
	fmt.Fprintf(&b, "rounds with calls deferred by -participant-retry-rate %g (seen in the coordinators' last 64 KiB of log): %d\n",
		c.Timing.ParticipantRetryRate, r.RateLimitedRounds)
	fmt.Fprintf(&b, "quiescence after healing: %s (reached: %v)\n", r.Result.Quiescence.Round(time.Millisecond), r.Result.Quiet)
	counts := map[string]int{}
	for _, v := range r.Result.Violations {
		inv, _, _ := strings.Cut(v, " ")
		counts[inv]++
	}
	fmt.Fprintf(&b, "invariants: I1 %d, I2 %d, I3 %d, I4 %d, I5 %d, I6 %d, other %d violations\n",
		counts["I1"], counts["I2"], counts["I3"], counts["I4"], counts["I5"], counts["I6"],
		len(r.Result.Violations)-counts["I1"]-counts["I2"]-counts["I3"]-counts["I4"]-counts["I5"]-counts["I6"])
	for i, v := range r.Result.Violations {
		if i == 50 {
			fmt.Fprintf(&b, "  ... %d more\n", len(r.Result.Violations)-50)
			break
		}
		fmt.Fprintf(&b, "  VIOLATION %s\n", v)
	}
	fmt.Fprintf(&b, "violations: %d\n", len(r.Result.Violations))
	return b.String()
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
	faults := NewStats()
	c, err := StartCluster(ClusterConfig{Bins: cfg.Bins, Timing: cfg.Timing, Coordinators: cfg.Coordinators,
		CoordDB: coordDB, PartDB: partDB, Seed: cfg.Seed, Faults: faults})
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
	wctx, stop := context.WithTimeout(ctx, cfg.Duration)
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
	var clusterErrs []string
	var errMu sync.Mutex
	if cfg.ProcessFaultEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sched := rand.New(rand.NewPCG(cfg.Seed, 999))
			for {
				d := time.Duration(float64(cfg.ProcessFaultEvery) * (0.5 + sched.Float64()))
				if !sleepCtx(wctx, d) {
					return
				}
				if err := injectProcessFault(wctx, c, sched, cfg.Timing, logf); err != nil {
					errMu.Lock()
					clusterErrs = append(clusterErrs, err.Error())
					errMu.Unlock()
				}
			}
		}()
	}
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
	logf("workload done: %d orders; healing", len(rec.Orders()))
	// An interrupted run (ctx cancelled) still heals and checks what it
	// did, bounded by QuiesceBound.
	ctx, cancelCheck := context.WithTimeout(context.WithoutCancel(ctx), cfg.QuiesceBound+time.Minute)
	defer cancelCheck()
	if err := c.Heal(); err != nil {
		return nil, fmt.Errorf("heal: %w", err)
	}
	res, err := Check(ctx, c, rec, base, cfg.QuiesceBound)
	if err != nil {
		return nil, err
	}
	rep := &Report{Config: cfg, Result: res, Faults: faults.Snapshot(), Txns: rec.Txns.Snapshot(), Orders: len(rec.Orders()),
		Elapsed: time.Since(began), CheckBack: c.CheckBackProxied(), ClusterErrs: clusterErrs,
		RateLimitedRounds: c.CoordinatorLogLines(tcc.ErrRateLimited.Error())}
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

// injectProcessFault draws one process or link fault and applies it.
func injectProcessFault(ctx context.Context, c *Cluster, rng *rand.Rand, t Timing, logf func(string, ...any)) error {
	ci := rng.IntN(c.Coordinators())
	b := Branches[rng.IntN(len(Branches))]
	switch r := rng.IntN(100); {
	case r < 20:
		pause := time.Duration(rng.IntN(500)) * time.Millisecond
		logf("fault: SIGKILL coordinator-%d, restart after %s", ci, pause)
		return c.KillCoordinator(ci, pause)
	case r < 40:
		point := FaultPoints[rng.IntN(len(FaultPoints))]
		n := 1 + rng.IntN(5)
		logf("fault: coordinator-%d armed to SIGKILL itself at %s:%d", ci, point, n)
		return c.ArmFaultPoint(ci, point, n)
	case r < 55:
		pause := time.Duration(rng.IntN(800)) * time.Millisecond
		logf("fault: SIGKILL participant-%s, restart after %s", b, pause)
		return c.KillParticipant(b, pause)
	case r < 67 && c.Coordinators() > 1:
		d := t.LeaseTTL + t.LeaseTTL/2 + time.Duration(rng.Int64N(int64(t.LeaseTTL)))
		logf("fault: SIGSTOP coordinator-%d for %s (lease %s), then SIGCONT", ci, d, t.LeaseTTL)
		c.PauseCoordinator(ctx, ci, d)
	case r < 80:
		d := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		logf("fault: coordinator -> participant-%s link down for %s", b, d)
		c.Partition(ctx, b, d)
	case r < 88 && c.CheckBackProxied():
		d := time.Duration(1000+rng.IntN(3000)) * time.Millisecond
		logf("fault: participant-%s -> coordinator (check-back) link down for %s", b, d)
		c.CutCheckBack(ctx, b, d)
	default:
		n := 1 + rng.IntN(4)
		for i := 0; i < n; i++ {
			c.ResetRandomConnection(rng)
		}
	}
	return nil
}
