package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/internal/tcc"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

const (
	trying     = tccv1.TransactionState_TRANSACTION_STATE_TRYING
	committing = tccv1.TransactionState_TRANSACTION_STATE_COMMITTING
	committed  = tccv1.TransactionState_TRANSACTION_STATE_COMMITTED
	aborting   = tccv1.TransactionState_TRANSACTION_STATE_ABORTING
	aborted    = tccv1.TransactionState_TRANSACTION_STATE_ABORTED
)

// TestStalePreExecution (S5/protocol step 5): a transaction begun, registered
// and tried but never committed is aborted by the loop after its deadline,
// its branches are cancelled, and a late Commit is refused.
func TestStalePreExecution(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, withHTTP)
		e.begin(t, "abandoned", "a", "b")
		// A whole loop pass 1ms before the deadline: nothing is due yet.
		e.clock.Advance(e.get(t, "abandoned").GetDeadline().AsTime().Sub(e.clock.Now()) - time.Millisecond)
		e.loopCaughtUp(t, func() bool { return e.get(t, "abandoned").GetState() != trying })
		if got := e.get(t, "abandoned").GetState(); got != trying {
			t.Fatalf("aborted before its deadline: %v", got)
		}
		if n := e.part.Attempts("Cancel", "abandoned", "a") + e.part.Attempts("Cancel", "abandoned", "b"); n != 0 {
			t.Fatalf("%d Cancels sent before the deadline", n)
		}
		e.clock.Advance(time.Second)
		eventually(t, "stale transaction aborted", func() bool { return e.get(t, "abandoned").GetState() == aborted })
		for _, b := range []string{"a", "b"} {
			if n := e.part.Count("Cancel", "abandoned", b); n != 1 {
				t.Fatalf("branch %s cancelled %d times", b, n)
			}
		}
		if r := e.get(t, "abandoned").GetAbortReason(); !strings.Contains(r, "deadline") {
			t.Fatalf("abort reason %q", r)
		}
		_, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: "abandoned"})
		grpctest.WantCode(t, err, codes.FailedPrecondition, "abandoned", "ABORTED")
	})
}

// TestParticipantDownBackoff (S10): Confirms fail while the participant is
// down; each round's delay grows exponentially (with jitter); when the
// participant is back the transaction completes, each branch confirmed once.
func TestParticipantDownBackoff(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec)
		e.begin(t, "slow", "a", "b")
		e.part.SetBehaviour(func(_ context.Context, method, _, branch string) error {
			if method == "Confirm" && branch == "b" {
				return testparticipant.Unavailable("accounts db")
			}
			return nil
		})
		r, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: "slow", Wait: true})
		if err != nil {
			t.Fatal(err)
		}
		tx := r.GetTransaction()
		if tx.GetState() != committing || tx.GetAttempts() != 1 || !strings.Contains(tx.GetLastError(), "unavailable") {
			t.Fatalf("after first round: %v attempts %d err %q", tx.GetState(), tx.GetAttempts(), tx.GetLastError())
		}
		for round := 1; round <= 5; round++ {
			tx = e.get(t, "slow")
			want := time.Duration(1<<(round-1)) * time.Second
			delay := tx.GetNextAttemptTime().AsTime().Sub(tx.GetUpdateTime().AsTime())
			if delay > want || delay < want*8/10-time.Millisecond {
				t.Fatalf("round %d: retry delay %s, want within [%s, %s]", round, delay, want*8/10, want)
			}
			e.clock.Advance(want)
			eventually(t, "next round", func() bool { return e.get(t, "slow").GetAttempts() == int32(round+1) })
		}
		if n := e.part.Attempts("Confirm", "slow", "b"); n != 6 {
			t.Fatalf("branch b: %d Confirm attempts, want 6", n)
		}
		e.part.SetBehaviour(nil)
		e.clock.Advance(time.Minute)
		eventually(t, "completion", func() bool { return e.get(t, "slow").GetState() == committed })
		if a, b := e.part.Count("Confirm", "slow", "a"), e.part.Count("Confirm", "slow", "b"); a != 1 || b != 1 {
			t.Fatalf("confirms applied a=%d b=%d, want 1 each", a, b)
		}
	})
}

// TestCancelRetriedWithBackoff (S10): the abort side of
// TestParticipantDownBackoff. A transaction rolled back by its initiator,
// or aborted by the loop at its deadline, whose participant answers Cancel
// with UNAVAILABLE four times: each retry is scheduled by the configured
// backoff (2s, 6s, 18s, then capped at 30s, each minus up to 20% jitter),
// the loop sends no Cancel before that time and sends one at it, and the
// fifth Cancel succeeds: both branches CANCELLED, the transaction ABORTED,
// each branch's Cancel applied once, and nothing is sent afterwards.
func TestCancelRetriedWithBackoff(t *testing.T) {
	const failures = 4
	backoff := tcc.Backoff{Initial: 2 * time.Second, Multiplier: 3, Max: 30 * time.Second, Jitter: 0.2}
	wantDelay := [failures]time.Duration{2 * time.Second, 6 * time.Second, 18 * time.Second, 30 * time.Second}
	aborts := []struct {
		name   string
		reason string
		abort  func(t *testing.T, e *env, gid string)
	}{
		{"rollback", "payment refused", func(t *testing.T, e *env, gid string) {
			if _, err := e.coord.Rollback(ctxT(t), &tccv1.RollbackRequest{Gid: gid, Wait: true, Reason: "payment refused"}); err != nil {
				t.Fatalf("rollback: %v", err)
			}
		}},
		{"deadline", "deadline", func(t *testing.T, e *env, gid string) {
			e.clock.Advance(e.get(t, gid).GetDeadline().AsTime().Sub(e.clock.Now()) + time.Second)
			eventually(t, "the loop's abort and first Cancel round", func() bool { return e.get(t, gid).GetAttempts() == 1 })
		}},
	}
	for _, ab := range aborts {
		t.Run(ab.name, func(t *testing.T) {
			dbtest.ForEach(t, func(t *testing.T, spec string) {
				e := setup(t, spec, withHTTP, func(c *app.Config) { c.Coordinator.Backoff = backoff })
				gid := "cancel-" + ab.name
				e.begin(t, gid, "a", "b")
				var mu sync.Mutex
				var at []time.Time // the coordinator's clock at each Cancel of b
				e.part.SetBehaviour(func(_ context.Context, method, _, branch string) error {
					if method != "Cancel" || branch != "b" {
						return nil
					}
					mu.Lock()
					defer mu.Unlock()
					at = append(at, e.clock.Now())
					if len(at) <= failures {
						return testparticipant.Unavailable("stock db")
					}
					return nil
				})
				ab.abort(t, e, gid)
				tx := e.get(t, gid)
				if tx.GetState() != aborting || tx.GetAttempts() != 1 || !strings.Contains(tx.GetLastError(), "unavailable") ||
					!strings.Contains(tx.GetAbortReason(), ab.reason) {
					t.Fatalf("after the first round: %v attempts %d last error %q abort reason %q",
						tx.GetState(), tx.GetAttempts(), tx.GetLastError(), tx.GetAbortReason())
				}
				for round := 1; round <= failures; round++ {
					tx := e.get(t, gid)
					next := tx.GetNextAttemptTime().AsTime()
					want := wantDelay[round-1]
					if delay := next.Sub(tx.GetUpdateTime().AsTime()); delay > want || delay < want*8/10-time.Millisecond {
						t.Fatalf("round %d: retry delay %s, want within [%s, %s]", round, delay, want*8/10, want)
					}
					// Not before its time: a whole loop pass with the clock
					// 1ms short of it sends nothing.
					e.clock.Advance(next.Sub(e.clock.Now()) - time.Millisecond)
					e.loopCaughtUp(t, func() bool { return e.part.Attempts("Cancel", gid, "b") > round })
					if n := e.part.Attempts("Cancel", gid, "b"); n != round || e.get(t, gid).GetAttempts() != int32(round) {
						t.Fatalf("round %d: Cancel sent %d times 1ms before the retry time, want %d", round, n, round)
					}
					// At its time it is sent.
					e.clock.Advance(time.Millisecond)
					eventually(t, fmt.Sprintf("round %d", round+1), func() bool {
						return e.part.Attempts("Cancel", gid, "b") == round+1 && e.get(t, gid).GetAttempts() == int32(round+1)
					})
				}
				mu.Lock()
				for i := 1; i < len(at); i++ {
					want := wantDelay[i-1]
					if gap := at[i].Sub(at[i-1]); gap > want || gap < want*8/10-time.Millisecond {
						t.Errorf("Cancel %d came %s after Cancel %d, want within [%s, %s]", i+1, gap, i, want*8/10, want)
					}
				}
				mu.Unlock()
				tx = e.get(t, gid)
				if tx.GetState() != aborted || tx.GetAttempts() != failures+1 {
					t.Fatalf("after the Cancel succeeded: %v after %d rounds, want ABORTED after %d", tx.GetState(), tx.GetAttempts(), failures+1)
				}
				for _, b := range tx.GetBranches() {
					if b.GetState() != tccv1.BranchState_BRANCH_STATE_CANCELLED {
						t.Fatalf("branch %s: %v, want CANCELLED", b.GetBranchId(), b.GetState())
					}
				}
				// Nothing more is sent, however long the loop runs.
				e.clock.Advance(time.Hour)
				e.loopCaughtUp(t, nil)
				for b, wantAttempts := range map[string]int{"a": 1, "b": failures + 1} {
					if n, sent := e.part.Count("Cancel", gid, b), e.part.Attempts("Cancel", gid, b); n != 1 || sent != wantAttempts {
						t.Errorf("branch %s: Cancel applied %d times in %d calls, want once in %d", b, n, sent, wantAttempts)
					}
					if n := e.part.Attempts("Confirm", gid, b); n != 0 {
						t.Errorf("branch %s: %d Confirms sent to an aborted transaction", b, n)
					}
				}
			})
		})
	}
}

// withHTTP serves /metrics, which loopCaughtUp reads.
func withHTTP(c *app.Config) { c.HTTPListen = "127.0.0.1:0" }

// recoveryPasses returns settle_recovery_passes_total (the setup needs
// withHTTP).
func (e *env) recoveryPasses(t *testing.T) int {
	t.Helper()
	if e.app.HTTPAddr() == "" {
		t.Fatal("recoveryPasses needs withHTTP (/metrics)")
	}
	m := grepLines(httpGet(t, "http://"+e.app.HTTPAddr()+"/metrics"), "settle_recovery_passes_total ")
	n, err := strconv.ParseFloat(strings.TrimPrefix(m, "settle_recovery_passes_total "), 64)
	if err != nil {
		t.Fatalf("settle_recovery_passes_total: %q: %v", m, err)
	}
	return int(n)
}

// loopCaughtUp returns once the recovery loop has run a whole pass that
// began after the call: one that read the clock as it is now and finished
// driving everything that was due then. This is what a negative check
// ("nothing is sent before its time") waits for instead of a sleep.
// Passes run one after another and each is counted after it has read the
// clock and listed what is due, before it drives it; so the second pass
// counted after the call began after it, and it has finished when a third
// is counted. stop, if not nil, ends the wait early when it returns true:
// the thing the caller checks did not happen has happened already.
func (e *env) loopCaughtUp(t *testing.T, stop func() bool) {
	t.Helper()
	from := e.recoveryPasses(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := e.recoveryPasses(t)
		if n >= from+3 || (stop != nil && stop()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recovery loop counted %d passes in 15s, want 3 (is a pass stuck?)", n-from)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRetryHorizonAndAdmin (S12): a transaction that keeps failing is
// flagged needs_attention, listed by the admin API, retried now on demand,
// and finishes once the participant is fixed.
func TestRetryHorizonAndAdmin(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, func(c *app.Config) { c.Coordinator.RetryHorizon = 30 * time.Second })
		admin := adminv1.NewAdminServiceClient(grpctest.Dial(t, e.app.Addr()))
		ctx := ctxT(t)
		e.begin(t, "stuck", "a")
		e.begin(t, "fine", "a")
		e.part.SetBehaviour(func(_ context.Context, method, gid, _ string) error {
			if method == "Confirm" && gid == "stuck" {
				return testparticipant.Unavailable("stock service")
			}
			return nil
		})
		for _, gid := range []string{"stuck", "fine"} {
			if _, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: gid, Wait: true}); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 8 && !e.get(t, "stuck").GetNeedsAttention(); i++ {
			before := e.get(t, "stuck").GetAttempts()
			e.clock.Advance(20 * time.Second)
			eventually(t, "another round", func() bool { return e.get(t, "stuck").GetAttempts() > before })
		}
		tx := e.get(t, "stuck")
		if !tx.GetNeedsAttention() || tx.GetState() != committing || tx.GetLastError() == "" {
			t.Fatalf("past the horizon: attention=%v state=%v err=%q", tx.GetNeedsAttention(), tx.GetState(), tx.GetLastError())
		}
		list, err := admin.ListTransactions(ctx, &adminv1.ListTransactionsRequest{NeedsAttention: true})
		if err != nil || len(list.GetTransactions()) != 1 || list.GetTransactions()[0].GetGid() != "stuck" {
			t.Fatalf("admin list needs-attention: %v %v", list, err)
		}
		byState, err := admin.ListTransactions(ctx, &adminv1.ListTransactionsRequest{State: committed})
		if err != nil || len(byState.GetTransactions()) != 1 || byState.GetTransactions()[0].GetGid() != "fine" {
			t.Fatalf("admin list committed: %v %v", byState, err)
		}
		// Fixed: retry now, without waiting for the backoff.
		e.part.SetBehaviour(nil)
		if _, err := admin.RetryNow(ctx, &adminv1.RetryNowRequest{Gid: "stuck"}); err != nil {
			t.Fatalf("retry now: %v", err)
		}
		eventually(t, "retried transaction finished", func() bool { return e.get(t, "stuck").GetState() == committed })
		_, err = admin.RetryNow(ctx, &adminv1.RetryNowRequest{Gid: "stuck"})
		grpctest.WantCode(t, err, codes.FailedPrecondition, "COMMITTED")
		_, err = admin.RetryNow(ctx, &adminv1.RetryNowRequest{Gid: "nope"})
		grpctest.WantCode(t, err, codes.NotFound)
	})
}

// TestConflictNeedsOperator (S11): a participant answers Confirm with "already
// cancelled". The branch is flagged, not retried, the transaction needs
// attention and the alert metric rises; an operator resolves it by hand
// with a stored reason and the transaction finishes.
func TestConflictNeedsOperator(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, func(c *app.Config) { c.HTTPListen = "127.0.0.1:0" })
		admin := adminv1.NewAdminServiceClient(grpctest.Dial(t, e.app.Addr()))
		ctx := ctxT(t)
		e.begin(t, "split", "a", "b")
		e.part.SetBehaviour(func(_ context.Context, method, _, branch string) error {
			if method == "Confirm" && branch == "b" {
				return testparticipant.Refused("conflict: branch already cancelled")
			}
			return nil
		})
		if _, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "split", Wait: true}); err != nil {
			t.Fatal(err)
		}
		tx := e.get(t, "split")
		if !tx.GetNeedsAttention() || tx.GetState() != committing || !strings.Contains(tx.GetLastError(), "conflict") {
			t.Fatalf("after conflict: %v", tx)
		}
		// The loop's next round (due after the capped backoff) must not
		// send the conflicting branch's Confirm again: wait for that round
		// to be recorded, then count.
		e.clock.Advance(10 * time.Minute)
		eventually(t, "the loop's round after the conflict", func() bool { return e.get(t, "split").GetAttempts() >= 2 })
		if n := e.part.Attempts("Confirm", "split", "b"); n != 1 {
			t.Fatalf("conflicting branch retried: %d attempts", n)
		}
		show, err := admin.GetTransaction(ctx, &adminv1.GetTransactionRequest{Gid: "split"})
		if err != nil || !show.GetBranchDetails()[1].GetConflict() {
			t.Fatalf("admin show: %v %v", show, err)
		}
		metrics := httpGet(t, "http://"+e.app.HTTPAddr()+"/metrics")
		if !strings.Contains(metrics, "settle_branch_conflicts_total 1") || !strings.Contains(metrics, "settle_transactions_needing_attention_total 1") {
			t.Fatalf("alert metrics missing:\n%s", grepLines(metrics, "settle_"))
		}

		_, err = admin.ResolveBranch(ctx, &adminv1.ResolveBranchRequest{Gid: "split", BranchId: "b", State: tccv1.BranchState_BRANCH_STATE_CANCELLED})
		grpctest.WantCode(t, err, codes.InvalidArgument, "reason")
		_, err = admin.ResolveBranch(ctx, &adminv1.ResolveBranchRequest{Gid: "split", BranchId: "b", State: tccv1.BranchState_BRANCH_STATE_CANCELLED,
			Reason: "refunded by hand, ticket OPS-7 (alice)"})
		if err != nil {
			t.Fatalf("resolve: %v", err)
		}
		eventually(t, "resolved transaction finished", func() bool { return e.get(t, "split").GetState() == committed })
		show, err = admin.GetTransaction(ctx, &adminv1.GetTransactionRequest{Gid: "split"})
		if err != nil || !strings.HasPrefix(show.GetBranchDetails()[1].GetResolution(), "refunded by hand, ticket OPS-7 (alice) [by an unauthenticated caller at ") ||
			show.GetTransaction().GetBranches()[1].GetState() != tccv1.BranchState_BRANCH_STATE_CANCELLED {
			t.Fatalf("resolution not recorded: %v %v", show, err)
		}
	})
}

// TestRetentionPurge: finished transactions are purged after the retention;
// unfinished ones and young tombstones are kept.
func TestRetentionPurge(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, func(c *app.Config) {
			c.Recovery.Retention = time.Hour
			c.Recovery.TombstoneRetention = 2 * time.Hour
			c.Recovery.PurgeInterval = 20 * time.Millisecond
		})
		ctx := ctxT(t)
		e.begin(t, "done", "a")
		if _, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "done", Wait: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.coord.CheckBack(ctx, &tccv1.CheckBackRequest{Gid: "ghost"}); err != nil {
			t.Fatal(err)
		}
		e.begin(t, "open", "a")
		e.part.SetBehaviour(func(_ context.Context, method, _, _ string) error { return testparticipant.Unavailable("down") })
		if _, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "open", Wait: true}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(90 * time.Minute)
		eventually(t, "finished transaction purged", func() bool {
			_, err := e.coord.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "done"})
			return err != nil
		})
		if e.get(t, "ghost").GetState() != aborted || e.get(t, "open").GetState() != committing {
			t.Fatal("tombstone or unfinished transaction purged too early")
		}
		e.clock.Advance(time.Hour)
		eventually(t, "tombstone purged", func() bool {
			_, err := e.coord.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: "ghost"})
			return err != nil
		})
		if e.get(t, "open").GetState() != committing {
			t.Fatal("unfinished transaction purged")
		}
	})
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestHTTPEndpoints: the JSON forms of GetTransaction and CheckBack for
// participants that do not speak gRPC.
func TestHTTPEndpoints(t *testing.T) {
	e := setup(t, dbtest.NewSQLite(t), withoutRecovery, func(c *app.Config) { c.HTTPListen = "127.0.0.1:0" })
	e.begin(t, "web-1", "a")
	base := "http://" + e.app.HTTPAddr()
	if got := httpPost(t, base+"/v1/checkback", `{"gid":"web-1","branchId":"a"}`, 200); !strings.Contains(got, `"verdict":"VERDICT_PENDING"`) {
		t.Fatalf("pending check-back: %s", got)
	}
	// A GET must be safe: the check-back of an unknown gid records a
	// tombstone, so GET is refused and records nothing.
	resp, err := http.Get(base + "/v1/checkback?gid=never-begun")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || !strings.Contains(string(body), "POST only") {
		t.Fatalf("GET check-back: %d %s", resp.StatusCode, body)
	}
	if _, err := e.coord.Begin(ctxT(t), &tccv1.BeginRequest{Gid: "never-begun"}); err != nil {
		t.Fatalf("a GET of the check-back recorded a tombstone: %v", err)
	}
	// Trailing data after the JSON object is refused, and so are unknown
	// fields; neither is answered (so nothing is recorded).
	for _, bad := range []string{`{"gid":"tomb-1"} {"gid":"x"}`, `{"gid":"tomb-1"}x`, `{"gid":"tomb-1","extra":1}`, `{"gid":`, ``} {
		if got := httpPost(t, base+"/v1/checkback", bad, 400); !strings.Contains(got, `"code":"INVALID_ARGUMENT"`) {
			t.Fatalf("POST %q: %s", bad, got)
		}
	}
	if _, err := e.coord.Begin(ctxT(t), &tccv1.BeginRequest{Gid: "tomb-1"}); err != nil {
		t.Fatalf("a refused check-back recorded a tombstone: %v", err)
	}
	if _, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: "web-1", Wait: true}); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post(base+"/v1/checkback", "application/json", strings.NewReader(`{"gid":"web-1","branchId":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"verdict":"VERDICT_CONFIRM"`) {
		t.Fatalf("POST check-back: %d %s", resp.StatusCode, body)
	}
	if got := httpGet(t, base+"/v1/transactions/web-1"); !strings.Contains(got, `"state":"TRANSACTION_STATE_COMMITTED"`) {
		t.Fatalf("get transaction: %s", got)
	}
	resp, err = http.Get(base + "/v1/transactions/missing")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"code":"NOT_FOUND"`) {
		t.Fatalf("missing: %d %s", resp.StatusCode, body)
	}
}

// httpPost posts body as JSON, checks the status and returns the reply.
func httpPost(t *testing.T, url, body string, wantStatus int) string {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("POST %s %q: status %d, want %d: %s", url, body, resp.StatusCode, wantStatus, b)
	}
	return string(b)
}

// TestLoopLeavesOwnRunningRound: when a delivery round outlives its lease
// (a slow participant or database), this instance's recovery loop must not
// claim the transaction from under its own round: the round records its
// result and the transaction finishes at once, with each branch confirmed
// once, instead of idling until a second lease expires.
func TestLoopLeavesOwnRunningRound(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, withHTTP)
		e.begin(t, "slow-round", "a", "b")
		release := make(chan struct{})
		e.part.SetBehaviour(func(ctx context.Context, method, _, _ string) error {
			if method != "Confirm" {
				return nil
			}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if _, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: "slow-round"}); err != nil {
			t.Fatal(err)
		}
		sent := func(b string) int { return e.part.Attempts("Confirm", "slow-round", b) }
		eventually(t, "both Confirms in flight", func() bool { return sent("a") == 1 && sent("b") == 1 })
		// The lease (30s) has run out and the transaction is due: a whole
		// loop pass must leave it to the running round, sending nothing.
		e.clock.Advance(time.Minute)
		e.loopCaughtUp(t, func() bool { return sent("a") > 1 || sent("b") > 1 })
		if a, b := sent("a"), sent("b"); a != 1 || b != 1 {
			t.Fatalf("the loop sent Confirms while this instance's own round was running: a=%d b=%d calls, want 1 each", a, b)
		}
		close(release)
		eventually(t, "transaction committed by its own round", func() bool { return e.get(t, "slow-round").GetState() == committed })
		for _, b := range []string{"a", "b"} {
			if n := e.part.Count("Confirm", "slow-round", b); n != 1 {
				t.Fatalf("branch %s confirmed %d times, want 1", b, n)
			}
		}
	})
}

// TestParticipantRetryRate (LESSONS, retries): with -participant-retry-rate 2,
// a participant coming back after an outage gets at most 2 retried calls per
// second of the coordinator's clock, however many transactions waited for
// it; the others are not sent, stay unfinished with a visible reason, and
// finish in later rounds. First rounds are never limited.
func TestParticipantRetryRate(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, func(c *app.Config) {
			c.Coordinator.ParticipantRetryRate = 2
			c.HTTPListen = "127.0.0.1:0"
		})
		e.part.SetBehaviour(func(_ context.Context, method, _, _ string) error {
			if method == "Confirm" {
				return testparticipant.Unavailable("stock db")
			}
			return nil
		})
		gids := []string{"r1", "r2", "r3", "r4", "r5"}
		for _, gid := range gids {
			e.begin(t, gid, "a")
			if _, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: gid, Wait: true}); err != nil {
				t.Fatal(err)
			}
		}
		calls := func() int {
			n := 0
			for _, gid := range gids {
				n += e.part.Attempts("Confirm", gid, "a")
			}
			return n
		}
		if n := calls(); n != 5 {
			t.Fatalf("first rounds sent %d Confirms, want 5 (never limited)", n)
		}
		e.part.SetBehaviour(nil)
		rounds := func(min int32) func() bool {
			return func() bool {
				for _, gid := range gids {
					if tx := e.get(t, gid); tx.GetState() != committed && tx.GetAttempts() < min {
						return false
					}
				}
				return true
			}
		}

		// Every second round is due at once: a burst of 2 calls is sent, the
		// other 3 rounds record the limit.
		e.clock.Advance(time.Second)
		eventually(t, "second rounds", rounds(2))
		if n := calls(); n != 7 {
			t.Fatalf("after the second rounds: %d Confirms sent, want 5+2", n)
		}
		limited := 0
		for _, gid := range gids {
			tx := e.get(t, gid)
			switch {
			case tx.GetState() == committed:
			case strings.Contains(tx.GetLastError(), "participant retry rate limit") && e.part.Attempts("Confirm", gid, "a") == 1:
				limited++
			default:
				t.Fatalf("%s: %v attempts %d last error %q", gid, tx.GetState(), tx.GetAttempts(), tx.GetLastError())
			}
		}
		if limited != 3 {
			t.Fatalf("%d rounds limited, want 3", limited)
		}

		// Two seconds later the bucket is full again (2 calls): two more
		// finish, the last one waits for the round after.
		e.clock.Advance(2 * time.Second)
		eventually(t, "third rounds", rounds(3))
		if n := calls(); n != 9 {
			t.Fatalf("after the third rounds: %d Confirms sent, want 9", n)
		}
		e.clock.Advance(4 * time.Second)
		eventually(t, "all committed", func() bool {
			for _, gid := range gids {
				if e.get(t, gid).GetState() != committed {
					return false
				}
			}
			return true
		})
		if n := calls(); n != 10 {
			t.Fatalf("%d Confirms sent in all, want 10 (each branch's failed first call, then one that succeeded)", n)
		}
		// The calls not sent are counted: 3 in the second rounds, 1 in the
		// third.
		metrics := httpGet(t, "http://"+e.app.HTTPAddr()+"/metrics")
		if !strings.Contains(metrics, `settle_branch_calls_total{call="confirm",result="rate_limited"} 4`) {
			t.Fatalf("rate-limited calls not counted:\n%s", grepLines(metrics, "settle_branch_calls"))
		}
	})
}

// TestStoreRoundTripsMetric: /metrics counts the store's database round
// trips, and a transaction alone costs what the store documents: Begin,
// one write per registration, the decision and the finishing round (5 on
// MySQL, where a write transaction is one script, and on PostgreSQL, where
// it is one pipeline; 14 on SQLite, where
// each statement, BEGIN and COMMIT count), plus the read of the final
// record that a waiting Commit answers with.
func TestStoreRoundTripsMetric(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, func(c *app.Config) { c.HTTPListen = "127.0.0.1:0" })
		read := func() int {
			t.Helper()
			m := grepLines(httpGet(t, "http://"+e.app.HTTPAddr()+"/metrics"), "settle_store_round_trips_total ")
			n, err := strconv.Atoi(strings.TrimPrefix(m, "settle_store_round_trips_total "))
			if err != nil {
				t.Fatalf("settle_store_round_trips_total: %q: %v", m, err)
			}
			return n
		}
		before := read()
		e.begin(t, "counted", "a", "b")
		if _, err := e.coord.Commit(ctxT(t), &tccv1.CommitRequest{Gid: "counted", Wait: true}); err != nil {
			t.Fatal(err)
		}
		want := 14 + 1
		if !strings.HasPrefix(spec, "sqlite:") {
			want = 5 + 1
		}
		if n := read() - before; n != want {
			t.Fatalf("a two-branch transaction alone took %d round trips, want %d", n, want)
		}
	})
}
