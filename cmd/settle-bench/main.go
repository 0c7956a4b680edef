// Command settle-bench is Settle's load generator. It runs N concurrent
// initiators, each doing whole TCC transactions in a loop (Begin, then for
// every branch RegisterBranch + Try, then Commit) against a running
// coordinator for a fixed window after a warm-up, and reports throughput,
// latency percentiles of the whole transaction and of Commit alone, errors
// by gRPC code, CPU per transaction of the coordinator and database
// processes (from /proc), database statements per transaction, and whether
// every transaction it started reached COMMITTED or ABORTED (and how long
// after the load stopped).
//
// Usage:
//
//	settle-bench [flags]
//	settle-bench summarize FILE.tsv...   medians per configuration (Markdown)
//
// Participant modes (-mode):
//
//	noop      no-op participants served by the bench itself on loopback
//	          (measures the coordinator)
//	demo      the demo participants (participant-demo serve, with their own
//	          databases) at -demo-accounts and -demo-inventory
//	baseline  no coordinator: the same Try and then Confirm calls made
//	          directly to the no-op participants (the ceiling of the setup)
//
// The coordinator is either already running (-coordinator ADDR; its pid is
// found from the listening socket, or given with -coordinator-pid), or
// started by the bench as a separate process (-spawn BINARY -spawn-db SPEC),
// or run inside the bench process (-inproc-db SPEC; convenient for
// profiling with -cpuprofile, but then coordinator and load generator share
// one process and the coordinator CPU cannot be told apart).
//
// Examples:
//
//	settle-bench -spawn ./bin/coordinator -spawn-db 'mysql:root@tcp(127.0.0.1:3306)/settle_bench' \
//	    -mysql-status 'root@tcp(127.0.0.1:3306)/' -c 10 -branches 2 -warmup 5s -duration 20s
//	settle-bench -spawn ./bin/coordinator -spawn-db 'postgres://postgres@127.0.0.1:5432/settle_bench?sslmode=disable' \
//	    -postgres-status 'postgres://postgres@127.0.0.1:5432/settle_bench?sslmode=disable' -c 10 -branches 2
//	settle-bench -coordinator 127.0.0.1:7400 -mode demo -demo-accounts 127.0.0.1:7501 \
//	    -demo-inventory 127.0.0.1:7502 -demo-seed 'mysql:root@tcp(127.0.0.1:3306)/demo_a,mysql:...'
//
// The exit status is 1 if any call failed or any transaction was left
// unfinished, so that CI can run it as a smoke test.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/settle-tcc/settle/internal/app"
)

func main() {
	// The coordinator's GC target (unless GOGC says otherwise): the load
	// generator shares the machine with what it measures and should cost
	// it little, and -inproc-db runs a coordinator in this process.
	app.SetGCPercent()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "settle-bench:", err)
		}
		os.Exit(1)
	}
}

// Config is the bench's configuration, from flags.
type Config struct {
	Mode        string
	Coordinator string
	Concurrency int
	Branches    int
	Warmup      time.Duration
	Duration    time.Duration
	Conns       int
	CallTimeout time.Duration
	TxTimeout   time.Duration
	PayloadSize int
	// RegisterAtBegin registers every branch with Begin (one call and one
	// durable write) instead of a RegisterBranch before each Try.
	RegisterAtBegin bool

	DemoAccounts  string
	DemoInventory string
	DemoSeed      []string

	CoordinatorPID int
	DBPID          int
	DBProcess      string
	MySQLStatus    string
	PostgresStatus string
	StoreLabel     string
	PartPIDs       []int
	Label          string
	// TokenFile holds a bearer token sent with every coordinator call
	// (a coordinator started with -auth-token-file).
	TokenFile string
	// AdminTokenFile holds an operator's token for the drain check's
	// AdminService calls.
	AdminTokenFile string

	Spawn     string
	SpawnDB   string
	SpawnArgs []string
	SpawnLog  string
	InprocDB  string

	DrainTimeout time.Duration
	CPUProfile   string
	TSV          string
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("settle-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Mode, "mode", "noop", "participants: noop (built-in no-op participants), demo (participant-demo processes) or baseline (no coordinator: Try+Confirm directly)")
	fs.StringVar(&c.Coordinator, "coordinator", "127.0.0.1:7400", "gRPC address of a running coordinator (ignored with -spawn or -inproc-db)")
	fs.IntVar(&c.Concurrency, "c", 10, "concurrent initiators")
	fs.IntVar(&c.Branches, "branches", 2, "branches per transaction (1..64)")
	fs.DurationVar(&c.Warmup, "warmup", 5*time.Second, "warm-up before the measured window (not counted)")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "measured window")
	fs.IntVar(&c.Conns, "conns", 4, "gRPC connections to the coordinator (initiators are spread over them)")
	fs.DurationVar(&c.CallTimeout, "call-timeout", 10*time.Second, "deadline of each whole transaction's calls")
	fs.DurationVar(&c.TxTimeout, "tx-timeout", time.Minute, "transaction timeout passed to Begin")
	fs.BoolVar(&c.RegisterAtBegin, "register-at-begin", false, "register the branches with Begin (BeginRequest.branches) instead of one RegisterBranch per branch")
	fs.IntVar(&c.PayloadSize, "payload-size", 32, "bytes of payload per branch (noop and baseline modes)")
	fs.StringVar(&c.DemoAccounts, "demo-accounts", "127.0.0.1:7501", "demo mode: participant-demo target serving accounts (even branches)")
	fs.StringVar(&c.DemoInventory, "demo-inventory", "127.0.0.1:7502", "demo mode: participant-demo target serving inventory (odd branches)")
	demoSeed := fs.String("demo-seed", "", "demo mode: comma-separated database specs of the demo participants; the bench creates one account and one stock item per initiator in each, with funds and stock for any run")
	fs.IntVar(&c.CoordinatorPID, "coordinator-pid", 0, "pid of the coordinator process for CPU accounting (default: the process listening on -coordinator)")
	fs.IntVar(&c.DBPID, "db-pid", 0, "pid of the database server for CPU accounting (default: found by -db-process name)")
	fs.StringVar(&c.DBProcess, "db-process", "mariadbd", "process name of the database server (empty: none, e.g. for SQLite)")
	fs.StringVar(&c.PostgresStatus, "postgres-status", "", "PostgreSQL DSN (URL or key=value) of the benchmarked database, to read pg_stat_database and pg_stat_wal deltas (commits, rows, WAL syncs per transaction) and durability settings")
	fs.StringVar(&c.MySQLStatus, "mysql-status", "", "MySQL/MariaDB DSN (go-sql-driver form) to read SHOW GLOBAL STATUS deltas (statements, commits, fsyncs per transaction) and durability settings")
	partPIDs := fs.String("participant-pids", "", "comma-separated pids of external participant processes (demo mode) whose CPU to report")
	fs.StringVar(&c.Label, "label", "", "a name for this configuration, written as the first TSV column (e.g. before/after)")
	fs.StringVar(&c.TokenFile, "token-file", "", "file holding an initiator's bearer token, sent with every coordinator call (coordinators with -auth-token-file)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", "", "file holding an operator's bearer token, for the drain check's AdminService calls")
	fs.StringVar(&c.StoreLabel, "store", "", "label of the coordinator's store in the report (default: from -spawn-db/-inproc-db, else \"?\")")
	fs.StringVar(&c.Spawn, "spawn", "", "start this coordinator binary as a child process on a free loopback port for the run, then stop it")
	fs.StringVar(&c.SpawnDB, "spawn-db", "", "the -db of the spawned coordinator")
	spawnArgs := fs.String("spawn-args", "", "extra space-separated flags for the spawned coordinator")
	fs.StringVar(&c.SpawnLog, "spawn-log", "", "file for the spawned coordinator's log (default: discarded)")
	fs.StringVar(&c.InprocDB, "inproc-db", "", "run the coordinator inside the bench process on this database (for profiling; not a headline number)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", time.Minute, "how long to wait after the load for every started transaction to finish")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the bench process over the measured window (with -inproc-db it includes the coordinator)")
	fs.StringVar(&c.TSV, "tsv", "", "append one tab-separated result line to this file (header written if new)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *demoSeed != "" {
		c.DemoSeed = strings.Split(*demoSeed, ",")
	}
	for _, f := range strings.Split(*partPIDs, ",") {
		if f = strings.TrimSpace(f); f != "" {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return c, fmt.Errorf("-participant-pids: %w", err)
			}
			c.PartPIDs = append(c.PartPIDs, pid)
		}
	}
	if *spawnArgs != "" {
		c.SpawnArgs = strings.Fields(*spawnArgs)
	}
	switch {
	case c.Mode != "noop" && c.Mode != "demo" && c.Mode != "baseline":
		return c, fmt.Errorf("-mode %q: want noop, demo or baseline", c.Mode)
	case c.Concurrency < 1 || c.Concurrency > 10000:
		return c, fmt.Errorf("-c %d: want 1..10000", c.Concurrency)
	case c.Branches < 1 || c.Branches > 64:
		return c, fmt.Errorf("-branches %d: want 1..64", c.Branches)
	case c.Duration <= 0 || c.Warmup < 0:
		return c, errors.New("-duration must be positive and -warmup not negative")
	case c.Conns < 1:
		return c, errors.New("-conns must be at least 1")
	case c.Spawn != "" && c.SpawnDB == "":
		return c, errors.New("-spawn needs -spawn-db")
	case c.Spawn != "" && c.InprocDB != "":
		return c, errors.New("-spawn and -inproc-db exclude each other")
	}
	if c.StoreLabel == "" {
		c.StoreLabel = storeLabel(c.SpawnDB + c.InprocDB)
		if c.Mode == "baseline" {
			c.StoreLabel = "none"
		}
	}
	return c, nil
}

func storeLabel(spec string) string {
	kind, _, _ := strings.Cut(spec, ":")
	switch kind {
	case "mysql":
		return "mariadb"
	case "sqlite":
		return "sqlite"
	case "postgres", "postgresql":
		return "postgres"
	}
	return "?"
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "summarize" {
		return summarize(args[1:], stdout)
	}
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, log: stderr}
	defer b.cleanup()
	if err := b.setup(ctx); err != nil {
		return err
	}
	if cfg.CPUProfile != "" {
		b.onWindow = func(start bool) {
			if start {
				f, err := os.Create(cfg.CPUProfile)
				if err == nil {
					_ = pprof.StartCPUProfile(f)
					b.cleanups = append(b.cleanups, func() { _ = f.Close() })
				}
				return
			}
			pprof.StopCPUProfile()
		}
	}
	rep, err := b.run(ctx)
	if err != nil {
		return err
	}
	rep.Write(stdout)
	if cfg.TSV != "" {
		rep.Label = cfg.Label
		if err := appendTSV(cfg.TSV, rep); err != nil {
			return err
		}
	}
	if rep.ErrorCount() > 0 || rep.Unfinished > 0 || rep.Committed == 0 {
		return fmt.Errorf("run failed: %d errors, %d unfinished transactions, %d committed", rep.ErrorCount(), rep.Unfinished, rep.Committed)
	}
	return nil
}

func appendTSV(path string, r *Report) error {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		fmt.Fprintln(f, TSVHeader)
	}
	fmt.Fprintln(f, r.TSV())
	return f.Close()
}
