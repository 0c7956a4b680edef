package tcc

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tasks never wait for each other: run starts a worker when none is idle,
// so 64 tasks that each block until all 64 are running all finish.
func TestWorkersRunWithoutWaiting(t *testing.T) {
	w := newWorkers(time.Minute)
	const n = 64
	var started sync.WaitGroup
	started.Add(n)
	all := make(chan struct{})
	var done sync.WaitGroup
	done.Add(n)
	for range n {
		w.run(func() {
			defer done.Done()
			started.Done()
			<-all
		})
	}
	waitOrFail(t, &started, "not every task started while the others were blocked")
	close(all)
	waitOrFail(t, &done, "tasks did not finish")
	if got := w.live.Load(); got != n {
		t.Fatalf("live workers = %d, want %d (each blocked task needed its own)", got, n)
	}
}

// Idle workers take later tasks instead of new goroutines starting, and
// exit after the idle time.
func TestWorkersReuseAndExit(t *testing.T) {
	w := newWorkers(200 * time.Millisecond)
	var ran atomic.Int64
	for range 100 {
		var one sync.WaitGroup
		one.Add(1)
		w.run(func() { ran.Add(1); one.Done() })
		one.Wait()
		time.Sleep(time.Millisecond) // let the worker get back to waiting
	}
	if ran.Load() != 100 {
		t.Fatalf("ran %d tasks, want 100", ran.Load())
	}
	// One worker takes them all; a run that comes before the worker is
	// back waiting starts a second one, which a loaded machine may see a
	// few times. Without reuse there would be 100 (or none, if workers
	// did not wait for more tasks).
	if got := w.live.Load(); got < 1 || got > 5 {
		t.Fatalf("live workers after 100 sequential tasks = %d, want 1 (reused)", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.live.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("live workers = %d after the idle time, want 0", w.live.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup, msg string) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal(msg)
	}
}
