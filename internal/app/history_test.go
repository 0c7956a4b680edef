package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

func eventKinds(h *adminv1.GetTransactionHistoryResponse) []string {
	var out []string
	for _, e := range h.GetEvents() {
		out = append(out, strings.TrimPrefix(e.GetKind().String(), "EVENT_KIND_"))
	}
	return out
}

// TestHistoryThroughAdminAPI: a transaction whose participant keeps failing,
// is flagged, retried by an operator and finishes, and one with a conflict
// resolved by hand: GetTransactionHistory returns every step in order with
// the call results, the flags and the operator actions with their actor.
func TestHistoryThroughAdminAPI(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, func(c *app.Config) { c.Coordinator.RetryHorizon = 30 * time.Second })
		admin := adminv1.NewAdminServiceClient(grpctest.Dial(t, e.app.Addr()))
		ctx := ctxT(t)
		e.begin(t, "stuck", "a")
		e.begin(t, "split", "a", "b")
		e.part.SetBehaviour(func(_ context.Context, method, gid, branch string) error {
			switch {
			case method == "Confirm" && gid == "stuck":
				return testparticipant.Unavailable("stock service")
			case method == "Confirm" && gid == "split" && branch == "b":
				return testparticipant.Refused("conflict: branch already cancelled")
			}
			return nil
		})
		for _, gid := range []string{"stuck", "split"} {
			if _, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: gid, Wait: true}); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 8 && !e.get(t, "stuck").GetNeedsAttention(); i++ {
			before := e.get(t, "stuck").GetAttempts()
			e.clock.Advance(20 * time.Second)
			eventually(t, "another round", func() bool { return e.get(t, "stuck").GetAttempts() > before })
		}
		e.part.SetBehaviour(nil)
		if _, err := admin.RetryNow(ctx, &adminv1.RetryNowRequest{Gid: "stuck"}); err != nil {
			t.Fatalf("retry now: %v", err)
		}
		eventually(t, "retried transaction finished", func() bool { return e.get(t, "stuck").GetState() == committed })

		h, err := admin.GetTransactionHistory(ctx, &adminv1.GetTransactionHistoryRequest{Gid: "stuck"})
		if err != nil {
			t.Fatal(err)
		}
		kinds := eventKinds(h)
		want := "BEGUN BRANCH_REGISTERED DECIDED ATTEMPT"
		if got := strings.Join(kinds, " "); !strings.HasPrefix(got, want) || !strings.Contains(got, "NEEDS_ATTENTION") ||
			!strings.HasSuffix(got, "RETRY_NOW ATTEMPT FINISHED") {
			t.Fatalf("history of stuck: %s", got)
		}
		ev := h.GetEvents()
		if d := ev[2]; d.GetCause() != adminv1.DecisionCause_DECISION_CAUSE_COMMIT || d.GetState() != committing || d.GetInstance() == "" {
			t.Fatalf("decided: %v", d)
		}
		first := ev[3]
		if first.GetResult() != adminv1.AttemptResult_ATTEMPT_RESULT_UNKNOWN || first.GetCode() != "Unavailable" ||
			!strings.Contains(first.GetMessage(), "stock service") || first.GetLatency().AsDuration() <= 0 ||
			first.GetCall() != "confirm" || first.GetAttempt() != 1 || first.GetBranchId() != "a" || first.GetInstance() == "" {
			t.Fatalf("first attempt: %v", first)
		}
		last := ev[len(ev)-2]
		if last.GetResult() != adminv1.AttemptResult_ATTEMPT_RESULT_SUCCESS || last.GetCode() != "OK" || last.GetAttempt() < 2 {
			t.Fatalf("last attempt: %v", last)
		}
		if r := ev[len(ev)-3]; r.GetActor() == "" {
			t.Fatalf("retry now without an actor: %v", r)
		}
		if f := ev[len(ev)-1]; f.GetState() != committed {
			t.Fatalf("finished: %v", f)
		}
		if h.GetBeginTime().AsTime() != ev[0].GetTime().AsTime() {
			t.Fatalf("begin time %v, first event %v", h.GetBeginTime(), ev[0].GetTime())
		}

		// The conflict, then the operator's resolution.
		if _, err := admin.ResolveBranch(ctx, &adminv1.ResolveBranchRequest{Gid: "split", BranchId: "b",
			State: tccv1.BranchState_BRANCH_STATE_CONFIRMED, Reason: "fixed by hand"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "resolved transaction finished", func() bool { return e.get(t, "split").GetState() == committed })
		h, err = admin.GetTransactionHistory(ctx, &adminv1.GetTransactionHistoryRequest{Gid: "split"})
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(eventKinds(h), " ")
		if !strings.Contains(got, "CONFLICT") || !strings.Contains(got, "RESOLVED") || !strings.HasSuffix(got, "FINISHED") {
			t.Fatalf("history of split: %s", got)
		}
		for _, ev := range h.GetEvents() {
			switch ev.GetKind() {
			case adminv1.EventKind_EVENT_KIND_ATTEMPT:
				if ev.GetBranchId() == "b" && (ev.GetResult() != adminv1.AttemptResult_ATTEMPT_RESULT_FAILED || ev.GetCode() != "FailedPrecondition") {
					t.Fatalf("conflicting attempt: %v", ev)
				}
			case adminv1.EventKind_EVENT_KIND_RESOLVED:
				if ev.GetBranchId() != "b" || ev.GetActor() == "" || !strings.HasPrefix(ev.GetMessage(), "fixed by hand") ||
					ev.GetBranchState() != tccv1.BranchState_BRANCH_STATE_CONFIRMED {
					t.Fatalf("resolved: %v", ev)
				}
			}
		}

		_, err = admin.GetTransactionHistory(ctx, &adminv1.GetTransactionHistoryRequest{Gid: "nope"})
		grpctest.WantCode(t, err, codes.NotFound)
		_, err = admin.GetTransactionHistory(ctx, &adminv1.GetTransactionHistoryRequest{Gid: "bad gid"})
		grpctest.WantCode(t, err, codes.InvalidArgument)
	})
}

// TestListFiltersThroughAdminAPI: the console's filters, and a clear
// INVALID_ARGUMENT for malformed ones.
func TestListFiltersThroughAdminAPI(t *testing.T) {
	e := setup(t, dbtest.NewSQLite(t))
	admin := adminv1.NewAdminServiceClient(grpctest.Dial(t, e.app.Addr()))
	ctx := ctxT(t)
	for _, gid := range []string{"order-1", "order-2", "refund-1"} {
		if _, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: gid, Labels: map[string]string{"kind": strings.Split(gid, "-")[0]}}); err != nil {
			t.Fatal(err)
		}
	}
	e.begin(t, "with-branch", "a")
	list := func(req *adminv1.ListTransactionsRequest) string {
		t.Helper()
		resp, err := admin.ListTransactions(ctx, req)
		if err != nil {
			t.Fatalf("list %v: %v", req, err)
		}
		var gids []string
		for _, tx := range resp.GetTransactions() {
			gids = append(gids, tx.GetGid())
		}
		return strings.Join(gids, " ")
	}
	if got := list(&adminv1.ListTransactionsRequest{GidPrefix: "order-"}); got != "order-1 order-2" {
		t.Errorf("gid prefix: %q", got)
	}
	if got := list(&adminv1.ListTransactionsRequest{Label: "kind=refund"}); got != "refund-1" {
		t.Errorf("label: %q", got)
	}
	if got := list(&adminv1.ListTransactionsRequest{Label: "kind"}); got != "order-1 order-2 refund-1" {
		t.Errorf("label key: %q", got)
	}
	if got := list(&adminv1.ListTransactionsRequest{Participant: e.part.Addr()}); got != "with-branch" {
		t.Errorf("participant: %q", got)
	}
	if got := list(&adminv1.ListTransactionsRequest{MaxAgeSeconds: 3600, PageSize: 2}); got != "order-1 order-2" {
		t.Errorf("max age, page: %q", got)
	}
	if got := list(&adminv1.ListTransactionsRequest{MinAgeSeconds: 3600}); got != "" {
		t.Errorf("min age: %q", got)
	}
	for _, req := range []*adminv1.ListTransactionsRequest{
		{Label: "=x"},
		{MinAgeSeconds: 60, MaxAgeSeconds: 30},
		{MaxAgeSeconds: -1},
		{MinAgeSeconds: 1 << 62},
		{GidPrefix: "bad prefix"},
		{Participant: "bad target\n"},
		{PageToken: "not a gid!"},
		{PageSize: 5000},
	} {
		_, err := admin.ListTransactions(ctx, req)
		grpctest.WantCode(t, err, codes.InvalidArgument)
	}
}
