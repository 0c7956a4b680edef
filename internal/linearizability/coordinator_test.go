package linearizability

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

var (
	flagDuration = flag.Duration("linearizability.duration", 0,
		"load per backend of TestCoordinatorLinearizable (0: the short CI run, "+shortDuration.String()+", longer if its history lacks a kind of result)")
	flagClients        = flag.Int("linearizability.clients", 0, "concurrent clients (0: 32)")
	flagSeed           = flag.Uint64("linearizability.seed", 0, "seed of the clients' choices (0: from the clock; the seed used is logged)")
	flagMySQLInstances = flag.Int("linearizability.mysql-instances", 2, "coordinator instances sharing the MariaDB/MySQL or PostgreSQL database (SQLite runs one)")
	flagStrict         = flag.Bool("linearizability.strict", true,
		"record the coordinator's answers as they are (false: record the two fixed deviations of KnownDeviation as the NOT_FOUND they stood for, to check an older coordinator)")
)

// shortDuration is the CI run's load per backend: with -race on a busy
// 2-core machine, the run, the check and the start and stop of the
// coordinator take about 10 s per backend. If the history misses a kind of
// result (requireCoverage), more rounds of extraRound run, up to
// maxExtraRounds.
const (
	shortDuration  = 8 * time.Second
	extraRound     = 3 * time.Second
	maxExtraRounds = 4
)

// callTimeout is the deadline of a call (but the few given a very short
// one): far above the calls' latency under load (p99 about 100 ms, max
// under 1 s with -race), so a call that reaches it is stuck, not slow.
const callTimeout = 5 * time.Second

// TestCoordinatorLinearizable runs many concurrent clients against a real
// coordinator (gRPC on loopback, recovery loop on, two participants that
// answer Confirm and Cancel) on SQLite, on MariaDB/MySQL and on PostgreSQL
// (on the last two, two coordinator instances share the database and each
// call goes to either),
// records every call, and checks the history with porcupine against the
// model of the transaction record (model.go).
func TestCoordinatorLinearizable(t *testing.T) {
	for _, b := range dbtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			instances := 1
			if b.Name != "sqlite" {
				instances = max(1, *flagMySQLInstances)
			}
			runCoordinator(t, b.New(t), instances)
		})
	}
}

func runCoordinator(t *testing.T, spec string, instances int) {
	ops, shared := runWorkload(t, spec, instances)
	res, err := Check(ops, 5*time.Minute)
	if err != nil {
		t.Errorf("check: %v", err)
	}
	t.Logf("porcupine: %s in %s (%d calls, %d partitions, largest %d)", res.Result, res.Took.Round(time.Millisecond),
		res.Operations, res.Partitions, res.Largest)
	switch res.Result {
	case porcupine.Ok:
	case porcupine.Illegal:
		gids := res.Illegal
		if len(gids) > 10 {
			gids = append(gids[:10:10], fmt.Sprintf("... (%d gids)", len(res.Illegal)))
		}
		t.Errorf("history is not linearizable: gids %s; porcupine's visualization of their calls: %s", strings.Join(gids, ", "), res.Visualization)
		for _, op := range ops {
			if in := op.Input.(Input); in.GID == res.Illegal[0] {
				t.Logf("  %s client %2d [%d, %d] %s", in.GID, op.ClientId, op.Call, op.Return, DescribeOperation(in, op.Output.(Output)))
			}
		}
	default:
		t.Errorf("porcupine could not decide in time: %s", res.Result)
	}
	if missing := missingCoverage(ops); len(missing) > 0 {
		t.Errorf("the history has no %s: the workload did not cover it", strings.Join(missing, ", "))
	}
	if shared == 0 {
		t.Errorf("no sample saw the store's writer with 3 or more writes waiting: the load did not make it share writes")
	}
}

// runWorkload starts the coordinator instance(s) on spec, runs the workload
// and returns its history and how many writer samples saw the writer
// sharing writes.
func runWorkload(t *testing.T, spec string, instances int) (ops []porcupine.Operation, shared int) {
	duration, extra := shortDuration, maxExtraRounds
	if *flagDuration > 0 {
		duration, extra = *flagDuration, 0
	}
	clients := 32
	if *flagClients > 0 {
		clients = *flagClients
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (-linearizability.seed %d replays the clients' choices; the interleaving differs), %d clients, %s of load, %d coordinator instance(s)",
		seed, seed, clients, duration, instances)

	w := &Workload{
		Participants:  [2]string{testparticipant.Start(t).Addr(), testparticipant.Start(t).Addr()},
		Clients:       clients,
		Window:        8,
		OpsPerGID:     16,
		ShortDeadline: 0.02,
		CallTimeout:   callTimeout,
		Strict:        *flagStrict,
	}
	logs := &logCounter{}
	t.Cleanup(func() {
		if s := logs.summary(); s != "" {
			t.Logf("coordinator warnings and errors (by message, with the first one's attributes):\n%s", s)
		}
	})
	for range instances {
		a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", DB: spec}, slog.New(logs))
		if err != nil {
			t.Fatalf("start coordinator: %v", err)
		}
		t.Cleanup(func() {
			if err := a.Shutdown(context.Background()); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
		w.Coordinators = append(w.Coordinators, tccv1.NewCoordinatorServiceClient(grpctest.Dial(t, a.Addr())))
	}

	h := NewHistory()
	probe := StartWriterProbe(100 * time.Millisecond)
	start := time.Now()
	for round := 0; ; round++ {
		// Each round has its own gids (and seed), so rounds never share
		// a record.
		w.Duration, w.MaxOps = duration, int(duration/time.Second+1)*20000
		w.Seed, w.Prefix = seed+uint64(round), fmt.Sprintf("lin%d-r%d", seed%100000, round)
		w.Run(h)
		missing := missingCoverage(h.Operations())
		if len(missing) == 0 || round >= extra {
			break
		}
		t.Logf("round %d: the history has no %s yet: %s more", round, strings.Join(missing, ", "), extraRound)
		duration = extraRound
	}
	took := time.Since(start)
	samples, most, shared := probe.Stop()
	ops = h.Operations()
	t.Logf("history: %d calls in %s (%.0f/s) on %d gids; writer: %d of %d samples had 3 or more writes waiting, at most %d at once\n%s",
		len(ops), took.Round(time.Millisecond), float64(len(ops))/took.Seconds(), countGIDs(ops), shared, samples, most, Summary(ops))
	var deviations, stuck int
	for _, op := range ops {
		out := op.Output.(Output)
		if out.Deviation {
			deviations++
		}
		if out.Took >= callTimeout {
			stuck++
			in := op.Input.(Input)
			t.Logf("call ran into the %s call timeout: %s client %d %s", callTimeout, in.GID, op.ClientId, DescribeOperation(in, out))
		}
	}
	if stuck > 0 {
		t.Logf("%d calls ran into the call timeout (outcome unknown)", stuck)
	}
	if deviations > 0 {
		t.Logf("%d answers were known deviations from the contract, checked as the NOT_FOUND the contract gives (-linearizability.strict checks them as they are)", deviations)
	}
	return ops, shared
}

// missingCoverage lists the kinds of result the model distinguishes that
// the history lacks: a run that never met a race, a refusal or a tombstone
// proves nothing about them.
func missingCoverage(ops []porcupine.Operation) []string {
	seen := map[string]int{}
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		key := in.Kind.String() + " " + out.Code.String()
		switch {
		case in.Kind == KindCheckBack && out.Code == CodeOK:
			key += " " + out.Verdict.String()
		case in.Kind == KindGet && out.Code == CodeOK:
			key += " " + out.Tx.State.String()
		}
		seen[key]++
	}
	var missing []string
	for _, want := range []string{
		"Begin OK", "Begin FAILED_PRECONDITION", "Begin ALREADY_EXISTS",
		"RegisterBranch OK", "RegisterBranch NOT_FOUND", "RegisterBranch FAILED_PRECONDITION", "RegisterBranch ALREADY_EXISTS",
		"Commit OK", "Commit FAILED_PRECONDITION", "Commit NOT_FOUND",
		"Rollback OK", "Rollback FAILED_PRECONDITION",
		"CheckBack OK CONFIRM", "CheckBack OK CANCEL", "CheckBack OK PENDING",
		"GetTransaction NOT_FOUND", "GetTransaction OK TRYING", "GetTransaction OK COMMITTED", "GetTransaction OK ABORTED",
	} {
		if seen[want] == 0 {
			missing = append(missing, fmt.Sprintf("%q", want))
		}
	}
	return missing
}

func countGIDs(ops []porcupine.Operation) int {
	gids := map[string]bool{}
	for _, op := range ops {
		gids[op.Input.(Input).GID] = true
	}
	return len(gids)
}

// logCounter is a slog.Handler that counts the coordinators' warnings and
// errors by message and keeps the first of each with its attributes.
type logCounter struct {
	mu    sync.Mutex
	count map[string]int
	first map[string]string
}

func (l *logCounter) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelWarn
}

func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	var attrs strings.Builder
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&attrs, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count == nil {
		l.count, l.first = map[string]int{}, map[string]string{}
	}
	key := r.Level.String() + " " + r.Message
	if l.count[key] == 0 {
		l.first[key] = attrs.String()
	}
	l.count[key]++
	return nil
}

func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }

func (l *logCounter) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.count))
	for k := range l.count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %6d %s:%s\n", l.count[k], k, l.first[k])
	}
	return b.String()
}
