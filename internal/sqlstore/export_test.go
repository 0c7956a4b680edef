package sqlstore

import "time"

// HoldWrites keeps the store's writer busy, so that the writes submitted
// meanwhile queue up, until flush is called: flush writes everything queued
// (one shared write per batch, as under load) and lets the writer go back
// to writing at once. queued reports how many requests are waiting.
func (s *Store) HoldWrites() (queued func() int, flush func()) {
	w := &s.writes
	for {
		w.mu.Lock()
		if !w.running {
			w.running = true
			w.mu.Unlock()
			break
		}
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	queued = func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.queued.size()
	}
	return queued, func() { w.drain(nil) }
}
