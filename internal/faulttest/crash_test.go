package faulttest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/faults"
)

// TestCrashIsReported runs the real suite briefly on SQLite against a
// coordinator that panics now and then: SETTLE_FAULT_POINT is armed with
// the panic action outside the fault schedule's knowledge (the schedule
// injects nothing), as a bug would be. Delivery rounds run outside any
// gRPC handler, so the panic at before_record_round kills the process;
// the supervisor restarts it, and the run must fail with a crash
// violation carrying the panic, and must not count the point as a
// scheduled fault point hit.
func TestCrashIsReported(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts real processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		Seed: 13, Duration: 3 * time.Second, Concurrency: 4, Backend: "sqlite",
		NewDB:        func(string) (string, error) { return dbtest.NewSQLite(t), nil },
		Coordinators: 1, Bins: bins, QuiesceBound: 30 * time.Second,
		CoordEnv: []string{faults.EnvVar + "=before_record_round:10:panic"},
		Log:      testLog{t},
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("\n%s", rep)
	crashes := 0
	for _, v := range rep.Result.Violations {
		if strings.HasPrefix(v, "CRASH coordinator-0") && strings.Contains(v, "exit status 2") {
			crashes++
		}
	}
	if crashes == 0 {
		t.Fatalf("no crash violation for the panicking coordinator; violations:\n%s", strings.Join(rep.Result.Violations, "\n"))
	}
	tails := strings.Join(rep.Result.CrashTails, "\n")
	if !strings.Contains(tails, "panic: settle: fault point before_record_round reached") {
		t.Errorf("the crash output does not show the panic:\n%s", tails)
	}
	for k, v := range rep.Faults {
		if strings.HasPrefix(k, string(FaultCoordPointHit)) {
			t.Errorf("%s counted %d times: a panic is not a scheduled fault point kill", k, v)
		}
	}
	all := 0
	for _, v := range rep.Result.Violations {
		if strings.HasPrefix(v, "CRASH ") {
			all++
		}
	}
	if want := fmt.Sprintf("crash %d,", all); !strings.Contains(rep.String(), want) {
		t.Errorf("the summary does not say %q:\n%s", want, rep)
	}
}

// TestExitClassification: a life's exit is classified from its own output
// and status; a fault point counts only when the process said it reached
// the point armed at its start, and every exit the harness did not cause
// is a crash. Plain shell processes stand in for the binaries.
func TestExitClassification(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts processes that wait for a health check")
	}
	c := &Cluster{faults: NewStats(), checkBacks: map[string][]CheckBackAnswer{}}
	for _, x := range []struct {
		name   string
		script string
		env    []string
		kill   bool // the harness kills it
		want   ExitKind
	}{
		{"armed point reached", `echo "settle: fault point after_begin reached, SIGKILL" >&2; kill -9 $$`, []string{faults.EnvVar + "=after_begin:1"}, false, ExitFaultPoint},
		{"point reached but not armed", `echo "settle: fault point after_begin reached, SIGKILL" >&2; kill -9 $$`, nil, false, ExitCrash},
		{"another point armed", `echo "settle: fault point after_begin reached, SIGKILL" >&2; kill -9 $$`, []string{faults.EnvVar + "=after_decision:1"}, false, ExitCrash},
		{"panic", `echo "panic: boom" >&2; echo "goroutine 1 [running]:" >&2; exit 2`, nil, false, ExitCrash},
		{"clean exit nobody asked for", `exit 0`, nil, false, ExitCrash},
		{"fatal log", `echo "coordinator: open store: refused" >&2; exit 1`, nil, false, ExitCrash},
		{"killed by the harness", `exec sleep 30`, nil, true, ExitHarness},
		{"panic, then killed by the harness", `echo "panic: boom" >&2; exec sleep 30`, nil, true, ExitCrash},
		{"recovered panic logged", `echo 'level=ERROR msg="panic in handler" method=/x panic=boom'; exec sleep 30`, nil, true, ExitHarness},
	} {
		t.Run(x.name, func(t *testing.T) {
			addr, err := FreeAddr() // nothing serves there: Start waits until the exit
			if err != nil {
				t.Fatal(err)
			}
			p := NewProc(x.name, addr, "/bin/sh", "-c", x.script)
			c.watch(p, true)
			if x.kill {
				go func() {
					time.Sleep(300 * time.Millisecond)
					p.Kill()
				}()
			}
			if err := p.Start(x.env...); err == nil {
				t.Fatal("Start succeeded without a server")
			}
			if got := p.LastExit(); got.Kind != x.want {
				t.Fatalf("exit %s classified %s, want %s; output:\n%s", got, got.Kind, x.want, got.Tail)
			}
		})
	}
	exits, panics := c.Crashes()
	if len(exits) != 6 {
		t.Errorf("%d crashes recorded, want 6: %v", len(exits), exits)
	}
	if len(panics) != 1 || !strings.Contains(panics[0], "panic in handler") {
		t.Errorf("recovered panics recorded: %q", panics)
	}
	if got := c.faults.Get(string(FaultCoordPointHit) + ":after_begin"); got != 1 {
		t.Errorf("after_begin counted hit %d times, want 1", got)
	}
}
