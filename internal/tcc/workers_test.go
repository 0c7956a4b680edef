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
	w.stop()
	waitLive(t, w, 0, "workers after stop")
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
	waitLive(t, w, 0, "workers after the idle time")
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

// Stopped workers exit as soon as they are idle instead of waiting out the
// idle time, and a task given after stop still runs, on a worker that
// exits when it is done (a goroutine outliving Coordinator.Close is a leak).
func TestWorkersStop(t *testing.T) {
	w := newWorkers(time.Hour)
	var done sync.WaitGroup
	done.Add(3)
	for range 3 {
		w.run(done.Done)
	}
	waitOrFail(t, &done, "tasks did not finish")
	w.stop()
	waitLive(t, w, 0, "idle workers after stop")
	done.Add(1)
	w.run(done.Done)
	waitOrFail(t, &done, "task given after stop did not run")
	waitLive(t, w, 0, "the worker of a task given after stop")
	w.stop() // idempotent
}

// waitLive waits (bounded) until w has want live workers.
func waitLive(t *testing.T, w *workers, want int64, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w.live.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d live workers after 10s, want %d", what, w.live.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}
