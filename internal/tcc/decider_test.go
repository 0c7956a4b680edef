package tcc_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/clocktest"
	"github.com/settle-tcc/settle/internal/server"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/tcc"
)

// askFunc is a tcc.Deciders answering from a function (the decider's
// answers themselves are tested against real deciders in internal/app).
type askFunc func(ctx context.Context, target, gid string) (tcc.Outcome, error)

func (f askFunc) Ask(ctx context.Context, target, gid string) (tcc.Outcome, error) {
	return f(ctx, target, gid)
}

func newDeciderCoordinator(t *testing.T, deciders tcc.Deciders) (*tcc.Coordinator, *sqlstore.Store, *clocktest.Clock) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "decider.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	parts := server.NewParticipants()
	t.Cleanup(func() { _ = parts.Close() })
	clock := clocktest.New(time.Now().UTC())
	c, err := tcc.NewCoordinator(store, parts, tcc.Config{InstanceID: "a", Deciders: deciders}, nil, clock, tcc.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(ctx) })
	return c, store, clock
}

// TestBeginDeciderNeedsDeciders: a coordinator configured without a way to
// call deciders refuses a Begin that names one, instead of accepting a
// transaction it could never decide by its decider.
func TestBeginDeciderNeedsDeciders(t *testing.T) {
	c, _, _ := newDeciderCoordinator(t, nil)
	_, err := c.Begin(context.Background(), tcc.BeginParams{GID: "g", Decider: "127.0.0.1:7600"})
	if !errors.Is(err, tcc.ErrInvalid) || !strings.Contains(err.Error(), "cannot call deciders") {
		t.Fatalf("begin with a decider and no Deciders: %v", err)
	}
}

// TestExpireAsksOnlyWhenDue: Expire asks the decider only for a record
// that is due and at the version listed; an answer that is neither commit
// nor abort leaves the transaction TRYING and flags it at once.
func TestExpireAsksOnlyWhenDue(t *testing.T) {
	asks := 0
	var answer tcc.Outcome
	c, store, clock := newDeciderCoordinator(t, askFunc(func(context.Context, string, string) (tcc.Outcome, error) {
		asks++
		return answer, nil
	}))
	ctx := context.Background()
	tx, err := c.Begin(ctx, tcc.BeginParams{GID: "g", Timeout: 10 * time.Second, Decider: "127.0.0.1:7600"})
	if err != nil {
		t.Fatal(err)
	}
	// Not due yet (before the deadline), and a stale version: not asked.
	if err := c.Expire(ctx, tcc.DueRef{GID: "g", State: tcc.StateTrying, Version: tx.Version}); err != nil || asks != 0 {
		t.Fatalf("before the deadline: asked %d times, %v", asks, err)
	}
	clock.Advance(11 * time.Second)
	if err := c.Expire(ctx, tcc.DueRef{GID: "g", State: tcc.StateTrying, Version: tx.Version + 1}); err != nil || asks != 0 {
		t.Fatalf("stale version: asked %d times, %v", asks, err)
	}
	// Due: asked; the answer is outside the contract.
	if err := c.Expire(ctx, tcc.DueRef{GID: "g", State: tcc.StateTrying, Version: tx.Version}); err != nil || asks != 1 {
		t.Fatalf("due: asked %d times, %v", asks, err)
	}
	got, err := store.GetTransaction(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != tcc.StateTrying || !got.NeedsAttention || got.Attempts != 1 || !strings.Contains(got.LastError, "neither commit nor abort") {
		t.Fatalf("after an answer outside the contract: %+v", got)
	}
	// The next ask answers abort: decided by the decider.
	answer = tcc.Abort
	clock.Advance(time.Minute)
	if err := c.Expire(ctx, tcc.DueRef{GID: "g", State: tcc.StateTrying, Version: got.Version}); err != nil || asks != 2 {
		t.Fatalf("second ask: asked %d times, %v", asks, err)
	}
	if got, err = store.GetTransaction(ctx, "g"); err != nil || !got.State.Decided() || !strings.Contains(got.AbortReason, "decider") {
		t.Fatalf("after abort: %+v %v", got, err)
	}
}
