package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
)

// TestParticipantsHTTPBounded: calls to one HTTP participant use at most
// HTTPMaxConnsPerHost connections at once (the others wait for one), and
// each answer class reaches the coordinator as its tcc error kind.
func TestParticipantsHTTPBounded(t *testing.T) {
	var inFlight, most atomic.Int32
	release := make(chan struct{})
	var conns sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns.Store(r.RemoteAddr, true)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		switch r.Header.Get("Settle-Gid") {
		case "refused":
			w.WriteHeader(http.StatusConflict)
		case "invalid":
			w.WriteHeader(http.StatusUnprocessableEntity)
		case "moved":
			http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
		case "busy":
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	srv.Start()
	defer srv.Close()
	p := NewParticipantsFromConfig(ParticipantsConfig{MaxTargets: 4, HTTPMaxConnsPerHost: 2})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	gids := []string{"ok-1", "ok-2", "ok-3", "refused", "invalid", "moved", "busy"}
	errs := make([]error, len(gids))
	var wg sync.WaitGroup
	for i, gid := range gids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Deliver(ctx, tcc.Commit, &tcc.Branch{GID: gid, BranchID: "b", Participant: srv.URL + "/tcc"})
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for inFlight.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // give a third connection the chance to open, if it could
	if n := inFlight.Load(); n != 2 {
		t.Errorf("%d calls in flight at the participant, want the bound, 2", n)
	}
	close(release)
	wg.Wait()
	if m := most.Load(); m > 2 {
		t.Errorf("%d calls at once, over the bound of 2", m)
	}
	n := 0
	conns.Range(func(any, any) bool { n++; return true })
	if n > 2 {
		t.Errorf("%d connections opened, want at most 2", n)
	}
	for i, gid := range gids {
		err := errs[i]
		var want error
		switch gid {
		case "refused":
			want = tcc.ErrParticipantRefused
		case "invalid":
			want = tcc.ErrParticipantInvalid
		case "moved":
			want = tcc.ErrParticipantUnexpected
		}
		switch {
		case want == nil && gid == "busy":
			if err == nil || errors.Is(err, tcc.ErrParticipantRefused) || errors.Is(err, tcc.ErrParticipantInvalid) || errors.Is(err, tcc.ErrParticipantUnexpected) {
				t.Errorf("%s: %v, want a plain transient error", gid, err)
			}
		case want == nil:
			if err != nil {
				t.Errorf("%s: %v", gid, err)
			}
		case !errors.Is(err, want):
			t.Errorf("%s: %v, want %v", gid, err, want)
		}
	}
}
