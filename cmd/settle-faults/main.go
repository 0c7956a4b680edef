// Command settle-faults runs Settle's fault-injection suite
// (internal/faulttest) for as long as asked: real coordinator and demo
// participant processes on loopback, a fault proxy on every link, process
// kills, fault points and pauses, a seeded workload, then heal and check
// the invariants I1-I7, progress, crashes, harness errors and fault
// coverage (an interrupt ends the workload early and still checks). By
// default the run starts with the coverage schedule, which fires every
// fault kind once, and then injects random faults. It prints a summary and
// exits 1 on any violation (or if the run could not be carried out).
//
//	settle-faults -duration 20m -db mysql
//	settle-faults -duration 2m -db sqlite -seed 42
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/settle-tcc/settle/internal/faulttest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "settle-faults:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("settle-faults", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 2*time.Minute, "how long the workload runs under faults")
	seed := fs.Uint64("seed", 0, "seed of the workload and fault schedule (0: from the clock; printed)")
	dbKind := fs.String("db", "mysql", "database: mysql, postgres or sqlite")
	mysqlDSN := fs.String("mysql-dsn", "root@tcp(127.0.0.1:3306)/", "MySQL/MariaDB DSN used to create and drop the run's databases")
	postgresDSN := fs.String("postgres-dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL DSN used to create and drop the run's databases")
	prefix := fs.String("db-prefix", "settle_faults_", "name prefix of the run's MySQL or PostgreSQL databases (not settle_t_: CI's cleanup drops those, also under a running long run)")
	concurrency := fs.Int("concurrency", 8, "concurrent initiators")
	coordinators := fs.Int("coordinators", 0, "coordinator processes (default: 2 on mysql and postgres, 1 on sqlite)")
	faultEvery := fs.Duration("fault-every", 2*time.Second, "mean pause between process and link faults (0: none)")
	netScale := fs.Float64("net-faults", 1, "scale of the per-call network fault odds (0: none)")
	quiesce := fs.Duration("quiesce-bound", 3*time.Minute, "bound on the wait for quiescence after healing")
	coverageFirst := fs.Bool("coverage-first", true, "fire every fault kind once (the coverage schedule) before the random schedule; without it the random schedule must fire every kind")
	minCommitted := fs.Int("min-committed", 100, "fail unless at least this many transactions committed")
	commitFloor := fs.Float64("commit-floor", faulttest.DefaultCommitFloor, "fail unless at least this fraction of the orders owed a commit committed")
	verbose := fs.Bool("v", true, "log progress and each process fault")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano() % 1_000_000_007)
	}
	var dbs *faulttest.Databases
	var err error
	switch *dbKind {
	case "mysql":
		dbs, err = faulttest.NewMySQLDatabases(*mysqlDSN, *prefix)
		if *coordinators == 0 {
			*coordinators = 2
		}
	case "postgres":
		dbs, err = faulttest.NewPostgresDatabases(*postgresDSN, *prefix)
		if *coordinators == 0 {
			*coordinators = 2
		}
	case "sqlite":
		dbs, err = faulttest.NewSQLiteDatabases()
		if *coordinators == 0 {
			*coordinators = 1
		}
	default:
		return fmt.Errorf("-db %q: want mysql, postgres or sqlite", *dbKind)
	}
	if err != nil {
		return err
	}
	defer func() {
		if err := dbs.Drop(); err != nil {
			fmt.Fprintln(stderr, "settle-faults: drop databases:", err)
		}
	}()
	fmt.Fprintf(stdout, "settle-faults: seed %d (replay with -seed %d)\n", *seed, *seed)
	fmt.Fprintln(stdout, "building coordinator and participant-demo ...")
	bins, err := faulttest.Build(ctx)
	if err != nil {
		return err
	}
	defer bins.Remove()
	odds := faulttest.DefaultOdds
	odds.Delay *= *netScale
	odds.Drop *= *netScale
	odds.DropReply *= *netScale
	odds.Duplicate *= *netScale
	var log io.Writer
	if *verbose {
		log = stdout
	}
	rep, err := faulttest.Run(ctx, faulttest.Config{
		Seed: *seed, Duration: *duration, Concurrency: *concurrency, Backend: *dbKind,
		NewDB: dbs.New, Coordinators: *coordinators, Bins: bins, Odds: odds,
		CoverageFirst: *coverageFirst, ProcessFaultEvery: *faultEvery, QuiesceBound: *quiesce,
		MinCommitted: *minCommitted, CommitFloor: *commitFloor, Log: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s", rep)
	if rep.Violations() > 0 {
		fmt.Fprintf(stdout, "\nprocess output tails:\n%s", rep.Logs)
		return fmt.Errorf("%d violations (seed %d)", rep.Violations(), *seed)
	}
	return nil
}
