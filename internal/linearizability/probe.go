package linearizability

import (
	"bufio"
	"bytes"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WriterProbe samples this process's goroutines while a workload runs
// against an in-process coordinator and counts the store writes waiting for
// the shared writer at each sample: goroutines inside
// internal/sqlstore.submit, the one entry of Begins, registrations,
// decisions and delivery rounds into the writer (internal/sqlstore/batch.go).
// While one write runs, every request that arrives queues and the next
// write takes all of them, so samples with several waiting requests show
// the writer was sharing writes. It is evidence of load, read from outside
// the store; it does not change the store.
type WriterProbe struct {
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples int
	max     int
	shared  int // samples with at least 3 requests in the writer
}

// StartWriterProbe samples every interval until Stop.
func StartWriterProbe(every time.Duration) *WriterProbe {
	p := &WriterProbe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		var buf bytes.Buffer
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			buf.Reset()
			if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
				continue
			}
			n := countIn(buf.Bytes(), "internal/sqlstore.submit[")
			p.mu.Lock()
			p.samples++
			p.max = max(p.max, n)
			if n >= 3 {
				p.shared++
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// Stop ends sampling and returns the number of samples, the most requests
// seen in the writer at once, and how many samples saw at least three (one
// write running and at least two queued or written together).
func (p *WriterProbe) Stop() (samples, most, shared int) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.samples, p.max, p.shared
}

// countIn counts the goroutines of a debug=1 goroutine profile whose stack
// has a frame containing fn.
func countIn(profile []byte, fn string) int {
	total := 0
	n := 0 // goroutines with the current stack
	found := false
	sc := bufio.NewScanner(bytes.NewReader(profile))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	flush := func() {
		if found {
			total += n
		}
		n, found = 0, false
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, " @ "):
			flush()
			n, _ = strconv.Atoi(strings.TrimSpace(line[:strings.Index(line, " @ ")]))
		case strings.HasPrefix(line, "#") && strings.Contains(line, fn):
			found = true
		}
	}
	flush()
	return total
}
