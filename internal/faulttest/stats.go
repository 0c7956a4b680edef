package faulttest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Stats counts events (faults injected, transaction outcomes) by name. It
// is safe for concurrent use.
type Stats struct {
	mu sync.Mutex
	m  map[string]int64
}

// NewStats returns empty counters.
func NewStats() *Stats { return &Stats{m: map[string]int64{}} }

// Add counts one event of kind k.
func (s *Stats) Add(k FaultKind) { s.AddName(string(k), 1) }

// AddName adds n to the counter called name.
func (s *Stats) AddName(name string, n int64) {
	s.mu.Lock()
	s.m[name] += n
	s.mu.Unlock()
}

// Get returns the counter called name.
func (s *Stats) Get(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name]
}

// Snapshot returns a copy of the counters.
func (s *Stats) Snapshot() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

// format prints counters whose name has prefix, sorted, one per line.
func formatCounts(m map[string]int64, prefix, indent string) string {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s%-44s %d\n", indent, k, m[k])
	}
	return b.String()
}
