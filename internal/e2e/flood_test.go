package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

// TestFlood runs the real coordinator with -max-in-flight 32 and floods
// it, on loopback for a bounded time, with ten times as many concurrent
// initiators as it admits, each sending Begin (one branch) and Commit as
// fast as it can with no retries. The coordinator must shed the excess
// with RESOURCE_EXHAUSTED at once; its memory and the latency of the
// calls it admits must stay bounded; afterwards every transaction it
// began finishes: those whose Commit was answered OK are COMMITTED with
// one Confirm each, those whose Commit was shed (and so never decided)
// are aborted at their deadline, and nothing is left undecided.
func TestFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the flood runs a real coordinator for about 20 s")
	}
	const (
		limit      = 32
		initiators = 320
		flood      = 8 * time.Second
	)
	part := testparticipant.Start(t)
	addr, httpAddr := freeAddr(t), freeAddr(t)
	coord := start(t, "coordinator", bins.Coordinator, addr, nil,
		"-listen", addr, "-http-listen", httpAddr, "-db", "sqlite:"+filepath.Join(t.TempDir(), "flood.db"),
		"-max-in-flight", strconv.Itoa(limit), "-allow-participants", "127.0.0.1:*",
		"-recovery-interval", "100ms", "-retry-initial", "100ms", "-log-level", "warn")
	_ = coord

	conns := make([]tccv1.CoordinatorServiceClient, 8)
	for i := range conns {
		conns[i] = tccv1.NewCoordinatorServiceClient(conn(t, addr))
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration // of admitted calls
		committed []string        // Commit answered OK
		begun     []string        // Begin answered OK
		shed      atomic.Int64
		cut       atomic.Int64
		otherErrs atomic.Int64
		firstErr  atomic.Value
	)
	ctx, cancel := context.WithTimeout(context.Background(), flood)
	defer cancel()
	call := func(f func() error) (ok, wasShed bool) {
		start := time.Now()
		err := f()
		switch code := status.Code(err); code {
		case codes.OK:
			mu.Lock()
			latencies = append(latencies, time.Since(start))
			mu.Unlock()
			return true, false
		case codes.ResourceExhausted:
			shed.Add(1)
			return false, true
		default:
			// In flight when the flood ended (its deadline: gRPC's timer
			// may fire a moment before the context's).
			if dl, _ := ctx.Deadline(); ctx.Err() != nil || time.Until(dl) < 100*time.Millisecond {
				cut.Add(1)
				return false, false
			}
			otherErrs.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return false, false
		}
	}
	var rssMax atomic.Int64
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for ctx.Err() == nil {
			if rss := metricValue(t, httpAddr, "process_resident_memory_bytes"); int64(rss) > rssMax.Load() {
				rssMax.Store(int64(rss))
			}
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	noRetry := grpc.WaitForReady(false)
	var wg sync.WaitGroup
	for w := range initiators {
		wg.Go(func() {
			c := conns[w%len(conns)]
			for n := 0; ctx.Err() == nil; n++ {
				gid := fmt.Sprintf("flood-%03d-%05d", w, n)
				ok, _ := call(func() error {
					_, err := c.Begin(ctx, &tccv1.BeginRequest{Gid: gid, Timeout: durationpb.New(2 * time.Second),
						Branches: []*tccv1.BranchRegistration{{BranchId: "a", Participant: part.Addr(), Payload: []byte("x")}}}, noRetry)
					return err
				})
				if !ok {
					continue
				}
				mu.Lock()
				begun = append(begun, gid)
				mu.Unlock()
				if ok, _ := call(func() error {
					_, err := c.Commit(ctx, &tccv1.CommitRequest{Gid: gid}, noRetry)
					return err
				}); ok {
					mu.Lock()
					committed = append(committed, gid)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	sampler.Wait()

	slices.Sort(latencies)
	p := func(q float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(math.Ceil(q*float64(len(latencies))))-1]
	}
	t.Logf("flood: %d initiators for %s against -max-in-flight %d: %d calls admitted (p50 %s, p99 %s, max %s), %d shed with RESOURCE_EXHAUSTED, %d cut by the end of the flood, %d other errors (first: %v); %d begun, %d committed; coordinator RSS at most %.1f MiB",
		initiators, flood, limit, len(latencies), p(0.5), p(0.99), p(1), shed.Load(), cut.Load(), otherErrs.Load(), firstErr.Load(),
		len(begun), len(committed), float64(rssMax.Load())/(1<<20))
	if shed.Load() == 0 {
		t.Fatal("nothing was shed: the flood did not exceed the limit, or the limit does not work")
	}
	if len(committed) < 100 {
		t.Fatalf("only %d transactions committed under the flood", len(committed))
	}
	// Errors other than shedding mean the coordinator failed calls it
	// admitted.
	if n := otherErrs.Load(); n > 0 {
		t.Fatalf("%d calls failed other than by shedding (first: %v)", n, firstErr.Load())
	}
	if rss := rssMax.Load(); rss == 0 || rss > 400<<20 {
		t.Fatalf("coordinator RSS at most %d bytes: want measured and under 400 MiB", rss)
	}
	if d := p(0.99); d > 2*time.Second {
		t.Fatalf("p99 latency of admitted calls %s: not bounded", d)
	}

	// Afterwards: every transaction begun ends final; committed ones were
	// confirmed once; none is left undecided.
	check := tccv1.NewCoordinatorServiceClient(conn(t, addr))
	deadline := time.Now().Add(60 * time.Second)
	pending := begun
	final := map[string]tccv1.TransactionState{}
	for len(pending) > 0 && time.Now().Before(deadline) {
		var still []string
		for _, gid := range pending {
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			r, err := check.GetTransaction(cctx, &tccv1.GetTransactionRequest{Gid: gid})
			ccancel()
			st := r.GetTransaction().GetState()
			if err != nil || (st != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED && st != tccv1.TransactionState_TRANSACTION_STATE_ABORTED) {
				still = append(still, gid)
				continue
			}
			final[gid] = st
		}
		pending = still
		if len(pending) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if len(pending) > 0 {
		t.Fatalf("%d of %d transactions not final a minute after the flood (e.g. %s)", len(pending), len(begun), pending[0])
	}
	for _, gid := range committed {
		if final[gid] != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED {
			t.Errorf("%s: Commit answered OK, final state %v", gid, final[gid])
		}
		if n := part.Count("Confirm", gid, "a"); n != 1 {
			t.Errorf("%s: confirmed %d times, want once", gid, n)
		}
	}
	aborted := 0
	for gid, st := range final {
		if st == tccv1.TransactionState_TRANSACTION_STATE_ABORTED {
			aborted++
			if n := part.Count("Confirm", gid, "a"); n != 0 {
				t.Errorf("%s: aborted but confirmed %d times", gid, n)
			}
		}
	}
	t.Logf("after the flood: %d COMMITTED, %d ABORTED (Commit shed or cut by the flood's end, aborted at the deadline), 0 left undecided", len(final)-aborted, aborted)
}

// metricValue reads one unlabelled metric from the coordinator's /metrics.
func metricValue(t *testing.T, httpAddr, name string) float64 {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
