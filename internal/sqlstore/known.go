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
	m     map[string]knownEntry
	bytes int
}

// knownEntry is a remembered record and its estimated size.
type knownEntry struct {
	tx   *tcc.Transaction
	size int
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

// put remembers a copy of tx as stored (see asStored); now is the writer's
// clock, used to drop records past their deadline when the map is full.
func (k *knownRecords) put(tx *tcc.Transaction, now time.Time) {
	size := knownSize(tx)
	if size > maxKnownBytes {
		return
	}
	c := asStored(tx)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = make(map[string]knownEntry)
	}
	k.remove(c.GID)
	if len(k.m) >= maxKnown || k.bytes+size > maxKnownBytes {
		for gid, old := range k.m {
			if old.tx.Deadline.Before(now) {
				k.remove(gid)
			}
		}
		if len(k.m) >= maxKnown || k.bytes+size > maxKnownBytes {
			return
		}
	}
	k.m[c.GID] = knownEntry{c, size}
	k.bytes += size
}

// take returns the remembered record of gid, or nil, and forgets it; the
// caller owns it.
func (k *knownRecords) take(gid string) *tcc.Transaction {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.m[gid]
	k.remove(gid)
	return e.tx
}

// remove forgets gid; k.mu is held.
func (k *knownRecords) remove(gid string) {
	if e, ok := k.m[gid]; ok {
		k.bytes -= e.size
		delete(k.m, gid)
	}
}

// atMicros is t as the database stores and returns it: microsecond
// precision, UTC, zero for zero.
func atMicros(t time.Time) time.Time { return fromMicros(micros(t)) }

// asStored returns a deep copy of tx as a read of the database would return
// it: times at microsecond precision in UTC, no empty label map, branches
// as stored (storedBranch) ordered by id.
func asStored(tx *tcc.Transaction) *tcc.Transaction {
	c := tx.Clone()
	c.Deadline, c.DecidedAt, c.NextAttemptAt = atMicros(c.Deadline), atMicros(c.DecidedAt), atMicros(c.NextAttemptAt)
	c.CreatedAt, c.UpdatedAt = atMicros(c.CreatedAt), atMicros(c.UpdatedAt)
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	if len(c.Branches) == 0 {
		c.Branches = nil
	}
	for i := range c.Branches {
		c.Branches[i] = storedBranch(c.GID, c.Branches[i])
	}
	sortBranches(c.Branches)
	return c
}

// storedBranch is b of transaction gid as a read returns it.
func storedBranch(gid string, b tcc.Branch) tcc.Branch {
	b.GID = gid
	b.CreatedAt, b.UpdatedAt = atMicros(b.CreatedAt), atMicros(b.UpdatedAt)
	b.Payload = nonNil(b.Payload)
	return b
}

// sortBranches orders branches by id, as reads do (ascii_bin / BINARY
// collation).
func sortBranches(bs []tcc.Branch) {
	slices.SortFunc(bs, func(a, b tcc.Branch) int { return strings.Compare(a.BranchID, b.BranchID) })
}

// registered returns known with the branch of p added as registerShare's
// statements write it.
func registered(known *tcc.Transaction, p tcc.AddBranchParams) *tcc.Transaction {
	tx := known
	tx.Version++
	tx.UpdatedAt = atMicros(p.Now)
	b := p.Branch
	b.State, b.Attempts, b.LastError, b.Conflict, b.Resolution = tcc.BranchRegistered, 0, "", false, ""
	b.CreatedAt, b.UpdatedAt = p.Now, p.Now
	tx.Branches = append(tx.Branches, storedBranch(tx.GID, b))
	sortBranches(tx.Branches)
	return tx
}

// decided returns known with the decision p applied as decide's
// compare-and-set writes it.
func decided(known *tcc.Transaction, p tcc.DecideParams) *tcc.Transaction {
	tx := known
	tx.State = p.Outcome.DecidedState()
	tx.Version++
	tx.LeaseOwner = p.Owner
	tx.NextAttemptAt = atMicros(p.LeaseUntil)
	tx.AbortReason = abortReason(p)
	tx.DecidedAt = atMicros(p.Now)
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
