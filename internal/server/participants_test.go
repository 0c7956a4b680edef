package server

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

func deliverTo(ctx context.Context, p *Participants, target, gid string) error {
	return p.Deliver(ctx, tcc.Commit, &tcc.Branch{GID: gid, BranchID: "b", Participant: target})
}

// TestParticipantsBounded: at most maxTargets connections are held; a new
// target closes the least recently used idle one; when all are busy the
// call fails (transiently) instead of opening another; connections idle
// past the idle timeout are closed when a new target is opened.
func TestParticipantsBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts := make([]*testparticipant.Server, 4)
	for i := range parts {
		parts[i] = testparticipant.Start(t)
	}
	p := NewBoundedParticipants(2, time.Hour)
	defer p.Close()
	now := time.Now()
	var clockMu sync.Mutex
	p.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }

	for _, part := range parts[:2] {
		if err := deliverTo(ctx, p, part.Addr(), "g"); err != nil {
			t.Fatal(err)
		}
		advance(time.Second)
	}
	if p.Open() != 2 {
		t.Fatalf("%d connections, want 2", p.Open())
	}
	// A third target: the least recently used (parts[0]) is closed.
	if err := deliverTo(ctx, p, parts[2].Addr(), "g"); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	_, has0 := p.conns[parts[0].Addr()]
	_, has1 := p.conns[parts[1].Addr()]
	p.mu.Unlock()
	if p.Open() != 2 || has0 || !has1 {
		t.Fatalf("after a third target: %d open, parts[0] held %v, parts[1] held %v; want the LRU one closed", p.Open(), has0, has1)
	}

	// Both held connections busy: a call to a fourth target fails.
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	for _, part := range parts[1:3] {
		part.SetBehaviour(func(ctx context.Context, _, _, _ string) error {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})
	}
	var wg sync.WaitGroup
	for _, part := range parts[1:3] {
		wg.Go(func() { _ = deliverTo(ctx, p, part.Addr(), "busy") })
	}
	<-entered
	<-entered
	err := deliverTo(ctx, p, parts[3].Addr(), "g")
	if !errors.Is(err, ErrTooManyTargets) || errors.Is(err, tcc.ErrParticipantRefused) || errors.Is(err, tcc.ErrParticipantInvalid) {
		t.Fatalf("a new target with every connection busy: %v, want ErrTooManyTargets (transient)", err)
	}
	close(release)
	wg.Wait()
	if parts[3].Count("Confirm", "g", "b") != 0 {
		t.Fatal("the refused call reached the participant")
	}

	// Idle past the timeout: opening a new target closes the idle ones.
	advance(2 * time.Hour)
	if err := deliverTo(ctx, p, parts[3].Addr(), "g"); err != nil {
		t.Fatal(err)
	}
	if p.Open() != 1 {
		t.Fatalf("%d connections after the others idled out, want 1", p.Open())
	}
}
