package linearizability

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// History records calls as they happen, from any number of goroutines.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

// NewHistory returns an empty history whose clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock: nanoseconds since it started (monotonic).
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records one call of client (zero-based, one goroutine issuing calls
// one after another) invoked at call and answered at ret (Now() values).
// A call with an unknown outcome gets its return time when the history is
// read: the end of the history.
func (h *History) Add(client int, in Input, out Output, call, ret int64) {
	op := porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
	if out.Code == CodeUnknown {
		// The return time becomes the end of the history; keep the real
		// one for the reader.
		op.Metadata = fmt.Sprintf("outcome unknown: answered after %s", out.Took.Round(time.Microsecond))
	}
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Operations returns the recorded calls, ordered by invocation. A call
// whose outcome is unknown returns at the end of the history, after every
// other call: it may have taken effect at any moment after it was invoked,
// or never.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	return Finish(ops)
}

// Finish sorts ops by invocation and moves the return of every call with an
// unknown outcome to the end of the history.
func Finish(ops []porcupine.Operation) []porcupine.Operation {
	var end int64
	for _, op := range ops {
		end = max(end, op.Call, op.Return)
	}
	for i := range ops {
		if ops[i].Output.(Output).Code == CodeUnknown {
			ops[i].Return = end + 1
		}
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	return ops
}

// Result is the outcome of checking a history.
type Result struct {
	Result     porcupine.CheckResult
	Operations int
	Partitions int
	// Largest is the size of the largest partition (one gid's calls).
	Largest int
	Took    time.Duration
	// Illegal lists the gids whose calls are not linearizable.
	Illegal []string
	// Visualization is the path of porcupine's HTML rendering of the
	// illegal gids' calls (written only when the check fails).
	Visualization string
}

// Check checks ops against Model with a timeout (0: none). If the history
// is not linearizable, it finds the gids at fault and writes porcupine's
// visualization of their calls to a temporary file, named in the result.
func Check(ops []porcupine.Operation, timeout time.Duration) (Result, error) {
	model := Model()
	parts := partition(ops)
	r := Result{Operations: len(ops), Partitions: len(parts)}
	for _, p := range parts {
		r.Largest = max(r.Largest, len(p))
	}
	start := time.Now()
	r.Result = porcupine.CheckOperationsTimeout(model, ops, timeout)
	r.Took = time.Since(start)
	if r.Result != porcupine.Illegal {
		return r, nil
	}
	// Check each gid alone to name the ones at fault, and render only
	// those (a visualization of thousands of gids is unreadable).
	var bad []porcupine.Operation
	for _, p := range parts {
		if porcupine.CheckOperationsTimeout(model, p, timeout) == porcupine.Illegal {
			r.Illegal = append(r.Illegal, p[0].Input.(Input).GID)
			bad = append(bad, p...)
		}
	}
	_, info := porcupine.CheckOperationsVerbose(model, bad, timeout)
	f, err := os.CreateTemp("", "settle-linearizability-*.html")
	if err != nil {
		return r, fmt.Errorf("visualization: %w", err)
	}
	defer f.Close()
	if err := porcupine.Visualize(model, info, f); err != nil {
		return r, fmt.Errorf("visualization: %w", err)
	}
	r.Visualization = f.Name()
	return r, nil
}
