package sqlstore

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
)

// Known records: registering and deciding without reading the record.
//
// RegisterBranch and Decide have to return the record with its branches
// (the client sees it; the coordinator delivers to the branches). Read
// after the write, that is one more round trip, on the paths the client
// waits for. But a transaction is usually begun, registered and decided
// through the same instance, so the store remembers the records it wrote
// itself (inserted, registered a branch of, or read on a refused
// registration) as they are at their version. Decide then sends one
// compare-and-set that also requires that version, RegisterBranch one
// that also inserts the branch if it matched, and on success the record
// returned is the remembered one with the change applied: exactly what a
// read would give (the contract suite checks this against GetTransaction).
//
// The version is the guard: any other write to a TRYING record (a branch
// registered through another instance, a recovery claim) increments it, the
// compare-and-set then matches nothing, and the call falls back to the
// path that reads the record. A remembered record is taken
// out when it is decided; one never decided here (another instance decided
// it) is dropped once its deadline has passed and room is needed. Memory is
// bounded by maxKnown records and maxKnownBytes of them (payloads
// included); past that, records are simply not remembered and the calls
// read.

// maxKnown and maxKnownBytes bound the remembered records.
const (
	maxKnown      = 1 << 14
	maxKnownBytes = 64 << 20
)

type knownRecords struct {
	mu    sync.Mutex
	m     map[string]*tcc.Transaction
	bytes int
}

// knownSize estimates the memory a remembered record holds.
func knownSize(tx *tcc.Transaction) int {
	n := 512 + len(tx.GID) + len(tx.LastError) + len(tx.AbortReason)
	for k, v := range tx.Labels {
		n += len(k) + len(v) + 64
	}
	for _, b := range tx.Branches {
		n += 256 + len(b.BranchID) + len(b.Participant) + len(b.Payload) + len(b.PayloadDigest)
	}
	return n
}

// put remembers tx as stored (see asStored); now is the writer's clock,
// used to drop records past their deadline when the map is full.
func (k *knownRecords) put(tx *tcc.Transaction, now time.Time) {
	if knownSize(tx) > maxKnownBytes {
		return
	}
	c := asStored(tx)
	size := knownSize(c)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = make(map[string]*tcc.Transaction)
	}
	k.remove(c.GID)
	if len(k.m) >= maxKnown || k.bytes+size > maxKnownBytes {
		for gid, old := range k.m {
			if old.Deadline.Before(now) {
				k.remove(gid)
			}
		}
		if len(k.m) >= maxKnown || k.bytes+size > maxKnownBytes {
			return
		}
	}
	k.m[c.GID] = c
	k.bytes += size
}

// take returns the remembered record of gid, or nil, and forgets it.
func (k *knownRecords) take(gid string) *tcc.Transaction {
	k.mu.Lock()
	defer k.mu.Unlock()
	tx := k.m[gid]
	k.remove(gid)
	return tx
}

// remove forgets gid; k.mu is held.
func (k *knownRecords) remove(gid string) {
	if old, ok := k.m[gid]; ok {
		k.bytes -= knownSize(old)
		delete(k.m, gid)
	}
}

// asStored returns a deep copy of tx as a read of the database would return
// it: times at microsecond precision in UTC, no empty label map, branches
// ordered by id (ascii_bin / BINARY collation) with a non-nil payload.
func asStored(tx *tcc.Transaction) *tcc.Transaction {
	c := tx.Clone()
	us := func(t time.Time) time.Time { return fromMicros(micros(t)) }
	c.Deadline, c.DecidedAt, c.NextAttemptAt = us(c.Deadline), us(c.DecidedAt), us(c.NextAttemptAt)
	c.CreatedAt, c.UpdatedAt = us(c.CreatedAt), us(c.UpdatedAt)
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	if len(c.Branches) == 0 {
		c.Branches = nil
	}
	for i := range c.Branches {
		b := &c.Branches[i]
		b.GID = c.GID
		b.CreatedAt, b.UpdatedAt = us(b.CreatedAt), us(b.UpdatedAt)
		b.Payload = nonNil(b.Payload)
	}
	slices.SortFunc(c.Branches, func(a, b tcc.Branch) int { return strings.Compare(a.BranchID, b.BranchID) })
	return c
}

// decided returns known with the decision p applied as decide's
// compare-and-set writes it.
func decided(known *tcc.Transaction, p tcc.DecideParams) *tcc.Transaction {
	tx := known
	tx.State = p.Outcome.DecidedState()
	tx.Version++
	tx.LeaseOwner = p.Owner
	tx.NextAttemptAt = fromMicros(micros(p.LeaseUntil))
	tx.AbortReason = abortReason(p)
	tx.DecidedAt = fromMicros(micros(p.Now))
	tx.UpdatedAt = tx.DecidedAt
	return tx
}

// abortReason is the abort_reason a decision stores.
func abortReason(p tcc.DecideParams) string {
	if p.Outcome == tcc.Abort {
		return p.AbortReason
	}
	return ""
}
