package sqlstore_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/tcc"
)

// turnProxy forwards TCP connections to a database server and counts the
// client's turns: each time a connection's client sends after the server
// has (or sends first). A request and its answer are one turn however many
// packets either takes, so turns are network round trips as the wire sees
// them.
type turnProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	turns  int
	wg     sync.WaitGroup
}

func startTurnProxy(t *testing.T, target string) *turnProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &turnProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *turnProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	serverSpoke := true // the client's first bytes are a turn
	pipe := func(dst, src net.Conn, fromClient bool) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				if fromClient && serverSpoke {
					p.turns++
				}
				serverSpoke = !fromClient
				p.mu.Unlock()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				_ = dst.Close() // EOF or error: end the other direction too
				return
			}
		}
	}
	done := make(chan struct{})
	go func() { pipe(server, client, true); close(done) }()
	pipe(client, server, false)
	_ = client.Close()
	<-done
}

func (p *turnProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.turns
}

// TestSharedWriteOneRoundTripOnTheWire checks on the wire what
// TestSharedWrite checks with the store's own counter: on PostgreSQL the
// shared write of Begins, registrations, decisions and finishing rounds is
// one network round trip (one pgx pipeline), and so is a lone decision.
func TestSharedWriteOneRoundTripOnTheWire(t *testing.T) {
	spec := dbtest.NewPostgres(t)
	if !strings.Contains(spec, "://") {
		t.Skipf("%s is in key=value form; this test rewrites a URL", dbtest.EnvPostgresDSN)
	}
	u, err := url.Parse(strings.TrimPrefix(spec, "postgres:"))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startTurnProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, "postgres:"+u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const n = 4
	gid := func(kind string, i int) string { return kind + "-" + string(rune('a'+i)) }
	var finishing []*tcc.Transaction
	for i := 0; i < n; i++ {
		for _, g := range []string{gid("reg", i), gid("dec", i)} {
			if err := s.InsertTransaction(ctx, knownTx(g, "a")); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.InsertTransaction(ctx, knownTx(gid("fin", i), "a", "b")); err != nil {
			t.Fatal(err)
		}
		tx, won, err := decideAs(s, "S", gid("fin", i), tcc.Commit, time.Second)
		if err != nil || !won {
			t.Fatalf("decide: won=%v err=%v", won, err)
		}
		finishing = append(finishing, tx)
	}

	// A lone decision of a record the store wrote: one statement.
	if err := s.InsertTransaction(ctx, knownTx("alone", "a")); err != nil {
		t.Fatal(err)
	}
	before, trips := proxy.count(), s.RoundTrips()
	if _, won, err := decideAs(s, "S", "alone", tcc.Commit, time.Second); err != nil || !won {
		t.Fatalf("decide alone: won=%v err=%v", won, err)
	}
	if got := proxy.count() - before; got != 1 || s.RoundTrips()-trips != 1 {
		t.Fatalf("a lone decision: %d turns on the wire, %d counted by the store, want 1 and 1", got, s.RoundTrips()-trips)
	}

	queued, flush := s.HoldWrites()
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	run := func(f func() error) {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- f() }()
	}
	for i := 0; i < n; i++ {
		run(func() error { return s.InsertTransaction(ctx, knownTx(gid("new", i), "x", "y")) })
		run(func() error {
			_, err := s.RegisterBranch(ctx, tcc.AddBranchParams{Branch: knownBranch(gid("reg", i), "b"), MaxBranches: 8, Now: k0})
			return err
		})
		run(func() error {
			_, won, err := decideAs(s, "S", gid("dec", i), tcc.Commit, time.Second)
			if err == nil && !won {
				err = errors.New("not won")
			}
			return err
		})
		tx := finishing[i]
		run(func() error {
			return s.RecordRound(ctx, tcc.RoundParams{GID: tx.GID, Outcome: tcc.Commit, Version: tx.Version,
				Done: []string{"a", "b"}, Finish: true, Now: k0.Add(2 * time.Second)})
		})
	}
	for deadline := time.Now().Add(10 * time.Second); queued() < 4*n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", queued(), 4*n)
		}
		time.Sleep(time.Millisecond)
	}
	before, trips = proxy.count(), s.RoundTrips()
	flush()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := proxy.count() - before; got != 1 || s.RoundTrips()-trips != 1 {
		t.Fatalf("%d requests of four kinds: %d turns on the wire, %d counted by the store, want 1 and 1",
			4*n, got, s.RoundTrips()-trips)
	}
	tx, err := s.GetTransaction(ctx, gid("fin", 0))
	if err != nil || tx.State != tcc.StateCommitted {
		t.Fatalf("finished record: err=%v tx=%+v", err, tx)
	}
}
