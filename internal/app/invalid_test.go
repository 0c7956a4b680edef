package app_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
)

// TestParticipantRejectsPayload: a participant that answers Confirm with
// INVALID_ARGUMENT (it will never accept that payload) gets the branch
// flagged as needing attention after the first round, not after the 24 h
// horizon, and retried only at the longest backoff; the metric counts the
// answer. Once the participant accepts, the transaction finishes.
func TestParticipantRejectsPayload(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		e := setup(t, spec, func(c *app.Config) { c.HTTPListen = "127.0.0.1:0" })
		var accept atomic.Bool
		e.part.SetBehaviour(func(_ context.Context, method, _, _ string) error {
			if method == "Confirm" && !accept.Load() {
				return status.Error(codes.InvalidArgument, "amount field missing")
			}
			return nil
		})
		e.begin(t, "bad-payload", "a")
		ctx := ctxT(t)
		resp, err := e.coord.Commit(ctx, &tccv1.CommitRequest{Gid: "bad-payload", Wait: true})
		if err != nil {
			t.Fatal(err)
		}
		tx := resp.GetTransaction()
		if !tx.GetNeedsAttention() || tx.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTING {
			t.Fatalf("after one rejected round: state %v, needs attention %v, want COMMITTING and flagged", tx.GetState(), tx.GetNeedsAttention())
		}
		if !strings.Contains(tx.GetLastError(), "amount field missing") {
			t.Errorf("last error %q does not carry the participant's message", tx.GetLastError())
		}
		// The retry is at the longest backoff (retry-max, default 5m), not
		// the first (1s).
		next := tx.GetNextAttemptTime().AsTime()
		if wait := next.Sub(e.clock.Now()); wait < 4*time.Minute {
			t.Errorf("next attempt in %s, want the longest backoff", wait)
		}
		m := httpGet(t, "http://"+e.app.HTTPAddr()+"/metrics")
		for _, want := range []string{`settle_branch_calls_total{call="confirm",result="invalid"} 1`, "settle_transactions_needing_attention_total 1"} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "settle_"))
			}
		}
		// Fixed participant, operator's retry now: it finishes.
		accept.Store(true)
		admin := adminv1.NewAdminServiceClient(grpctest.Dial(t, e.app.Addr()))
		if _, err := admin.RetryNow(ctx, &adminv1.RetryNowRequest{Gid: "bad-payload"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "COMMITTED after the fix and retry now", func() bool {
			return e.get(t, "bad-payload").GetState() == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED
		})
	})
}
