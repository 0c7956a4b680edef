package faulttest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/dbtest"
)

var (
	seedFlag     = flag.Uint64("faulttest.seed", 0, "seed of the short fault run (0: derived from the time, printed)")
	durationFlag = flag.Duration("faulttest.duration", 15*time.Second, "least workload duration of each short fault run (it also lasts until the coverage schedule is done)")
)

var bins *Binaries

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b, err := Build(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins = b
	code := m.Run()
	b.Remove()
	os.Exit(code)
}

func seed(t *testing.T) uint64 {
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano() % 1_000_000_007)
	}
	t.Logf("seed %d (replay: go test ./internal/faulttest/ -run '%s' -faulttest.seed %d)", s, t.Name(), s)
	return s
}

// TestShortFaultRun runs the fault suite briefly on SQLite (one
// coordinator) and MariaDB (two coordinators, so a paused owner is taken
// over). The coverage schedule first fires every fault kind of
// RequiredKinds (every per-call fault, a reset, a cut of every link kind,
// coordinator and participant SIGKILLs, each named fault point reached, a
// round deferred by the retry-rate cap, and on MariaDB a pause past the
// lease with a takeover), then random faults follow; then heal and check
// I1-I7, progress (minShortCommitted and the commit floor), crashes,
// harness errors and coverage. Any violation fails.
func TestShortFaultRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the fault run starts real processes for about a minute")
	}
	for _, be := range []struct {
		name   string
		coords int
		newDB  func(t testing.TB) string
	}{
		{"sqlite", 1, dbtest.NewSQLite},
		{"mysql", 2, dbtest.NewMySQL},
		{"postgres", 2, dbtest.NewPostgres},
	} {
		t.Run(be.name, func(t *testing.T) {
			if be.name != "sqlite" {
				be.newDB(t) // skips (or fails, in CI) when the server is not configured
			}
			s := seed(t)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			rep, err := Run(ctx, Config{
				Seed: s, Duration: *durationFlag, Concurrency: 6, Backend: be.name,
				NewDB:        func(string) (string, error) { return be.newDB(t), nil },
				Coordinators: be.coords, Bins: bins, Odds: DefaultOdds,
				CoverageFirst: true, ProcessFaultEvery: 1500 * time.Millisecond, QuiesceBound: 45 * time.Second,
				MinCommitted: minShortCommitted, Log: testLog{t},
			})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			t.Logf("\n%s", rep)
			if rep.Violations() > 0 {
				t.Logf("process output:\n%s", rep.Logs)
				t.Fatalf("%d violations (seed %d)", rep.Violations(), s)
			}
		})
	}
}

// minShortCommitted is the least number of transactions a short run must
// commit (on this 2-core machine, loaded, it commits 60 to 110).
const minShortCommitted = 20

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
