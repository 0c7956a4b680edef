package tcc

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The workers' tests run in a synctest bubble: synctest.Wait returns once
// every worker is blocked (running a blocked task, or idle, waiting for
// the next one), and time moves only when all are, so "a worker is back
// waiting" and "the idle time has passed" are exact, not slept for.

// Tasks never wait for each other: run starts a worker when none is idle,
// so 64 tasks that each block until all 64 are running all finish.
func TestWorkersRunWithoutWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkers(time.Minute)
		defer w.stop()
		const n = 64
		var started atomic.Int64
		all := make(chan struct{})
		var done sync.WaitGroup
		done.Add(n)
		for range n {
			w.run(func() {
				defer done.Done()
				started.Add(1)
				<-all
			})
		}
		synctest.Wait()
		if got := started.Load(); got != n {
			t.Fatalf("%d of %d tasks started while the others were blocked", got, n)
		}
		close(all)
		done.Wait()
		if got := w.live.Load(); got != n {
			t.Fatalf("live workers = %d, want %d (each blocked task needed its own)", got, n)
		}
	})
}

// Idle workers take later tasks instead of new goroutines starting, and
// exit after exactly the idle time.
func TestWorkersReuseAndExit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = 200 * time.Millisecond
		w := newWorkers(idle)
		defer w.stop()
		var ran atomic.Int64
		for i := range 100 {
			w.run(func() { ran.Add(1) })
			synctest.Wait() // the task ran and its worker is back waiting
			if got := w.live.Load(); got != 1 {
				t.Fatalf("live workers after %d sequential tasks = %d, want 1 (reused)", i+1, got)
			}
		}
		if ran.Load() != 100 {
			t.Fatalf("ran %d tasks, want 100", ran.Load())
		}
		time.Sleep(idle - time.Nanosecond)
		synctest.Wait()
		if got := w.live.Load(); got != 1 {
			t.Fatalf("live workers = %d just before the idle time had passed, want 1", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := w.live.Load(); got != 0 {
			t.Fatalf("live workers = %d after the idle time, want 0", got)
		}
	})
}

// Stopped workers exit as soon as they are idle instead of waiting out the
// idle time, and a task given after stop still runs, on a worker that
// exits when it is done (a goroutine outliving Coordinator.Close is a leak).
func TestWorkersStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkers(time.Hour)
		release := make(chan struct{})
		var ran atomic.Int64
		for range 3 {
			w.run(func() { <-release; ran.Add(1) })
		}
		w.run(func() { ran.Add(1) })
		synctest.Wait()
		if got := w.live.Load(); got != 4 {
			t.Fatalf("live workers = %d, want 4", got)
		}
		start := time.Now()
		w.stop()
		synctest.Wait()
		if got := w.live.Load(); got != 3 {
			t.Fatalf("live workers after stop = %d, want 3 (the idle one exits, the 3 busy ones finish their task)", got)
		}
		close(release)
		synctest.Wait()
		if got := w.live.Load(); got != 0 {
			t.Fatalf("live workers after their tasks = %d, want 0", got)
		}
		w.run(func() { ran.Add(1) })
		synctest.Wait()
		if got := w.live.Load(); got != 0 || ran.Load() != 5 {
			t.Fatalf("task given after stop: ran %d of 5 tasks, %d live workers; want 5, 0", ran.Load(), got)
		}
		if waited := time.Since(start); waited != 0 {
			t.Fatalf("stopped workers exited after %s, want at once (not the idle time)", waited)
		}
		w.stop() // idempotent
	})
}
