package recovery_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/recovery"
	"github.com/settle-tcc/settle/internal/server"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/tcc"
)

// newLoop returns a coordinator and a recovery loop over s, tuned to drain
// a backlog as fast as the database allows.
func newLoop(tb testing.TB, s *sqlstore.Store, concurrency int) *recovery.Loop {
	tb.Helper()
	parts := server.NewParticipants()
	tb.Cleanup(func() { _ = parts.Close() })
	coord, err := tcc.NewCoordinator(s, parts, tcc.Config{InstanceID: "drain"}, slog.New(slog.DiscardHandler), nil, tcc.Hooks{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := coord.Close(context.Background()); err != nil {
			tb.Errorf("close coordinator: %v", err)
		}
	})
	loop, err := recovery.New(s, coord, recovery.Config{Interval: time.Millisecond, BatchSize: 1000, Concurrency: concurrency, Rate: 1e6},
		slog.New(slog.DiscardHandler), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return loop
}

// drain runs recovery passes until a pass finds nothing due, and returns
// how many passes it took. Bounded: it fails after limit passes.
func drain(tb testing.TB, loop *recovery.Loop, limit int) int {
	tb.Helper()
	for pass := 1; pass <= limit; pass++ {
		n, err := loop.RunOnce(context.Background())
		if err != nil {
			tb.Fatalf("pass %d: %v", pass, err)
		}
		if n == 0 {
			return pass
		}
	}
	tb.Fatalf("still due work after %d passes", limit)
	return 0
}
