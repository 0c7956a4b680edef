package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
)

// Group commit: one writer for the four kinds of write.
//
// Begin, RegisterBranch, Decide and RecordRound requests that arrive while
// a write is running are queued, and the next write carries every kind at
// once: one database transaction (one round trip on MySQL, script.go, and
// on PostgreSQL, pipeline.go)
// holding the multi-row INSERTs of the Begins and their branches, the
// compare-and-sets of the registrations and decisions of records this
// store remembers (known.go) and the delivery rounds. A request arriving
// when no write is running is written at once, alone, so at low load a
// request waits at most for the one write already running, and as load
// grows batching saves round trips, commits (fsyncs) and statements. Durability is unchanged: every caller returns
// only after the statement or transaction holding its write has committed.
//
// What the shared write cannot settle runs afterwards through the
// single-request code, which gives each request its own precise result,
// in a goroutine of its own so that the next shared write does not wait
// for it: registrations and decisions of records this store does not
// remember (one locking transaction for several, from a few on, then one
// by one), compare-and-sets that matched nothing (the record changed
// since), requests for a gid that already has one in the batch (they run
// after it), and everything in a shared write that failed. A failed
// shared write (a duplicate gid, a deadlock, a lost connection) was rolled
// back whole, so each of its requests is written again alone; every kind's
// single path is safe to repeat.

// maxBatch bounds the requests of each kind written together.
const maxBatch = 64

// batchTimeout bounds the database work of one batch; it is not tied to any
// one caller's context because the batch serves several.
const batchTimeout = 10 * time.Second

type pending[P, T any] struct {
	p    P
	res  T
	err  error
	done chan struct{}
}

// writer queues the requests of the four kinds and writes them in shared
// batches, one batch at a time.
type writer struct {
	mu      sync.Mutex
	running bool
	queued  writeBatch
	flush   func(ctx context.Context, b *writeBatch)
}

// writeBatch holds requests of the four kinds: those queued, or those one
// shared write takes.
type writeBatch struct {
	inserts   []*pending[*tcc.Transaction, unit]
	registers []*pending[tcc.AddBranchParams, *tcc.Transaction]
	decides   []*pending[tcc.DecideParams, decision]
	rounds    []*pending[tcc.RoundParams, unit]
}

func (b *writeBatch) size() int {
	return len(b.inserts) + len(b.registers) + len(b.decides) + len(b.rounds)
}

// submit queues p on q (one of w.queued's lists) and returns its result
// once it has been written. If no write is running the caller writes
// batches itself until its own request is done, then hands what is left to
// a new goroutine.
func submit[P, T any](ctx context.Context, w *writer, q *[]*pending[P, T], p P) (T, error) {
	r := &pending[P, T]{p: p, done: make(chan struct{})}
	w.mu.Lock()
	*q = append(*q, r)
	if !w.running {
		w.running = true
		w.mu.Unlock()
		w.drain(r.done)
	} else {
		w.mu.Unlock()
	}
	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		// The write may still happen: the outcome is unknown, as for any
		// timed-out database call.
		var zero T
		return zero, ctx.Err()
	}
}

// drain writes batches until own (if not nil) is closed and, if requests
// are still queued, continues in a new goroutine so that no caller is held
// serving others.
func (w *writer) drain(own chan struct{}) {
	for {
		w.mu.Lock()
		if w.queued.size() == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		if own != nil && closed(own) {
			w.mu.Unlock()
			go w.drain(nil)
			return
		}
		q := &w.queued
		b := writeBatch{
			inserts:   take(&q.inserts),
			registers: take(&q.registers),
			decides:   take(&q.decides),
			rounds:    take(&q.rounds),
		}
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
		w.flush(ctx, &b)
		cancel()
	}
}

// take removes up to maxBatch requests from the front of q.
func take[P, T any](q *[]*pending[P, T]) []*pending[P, T] {
	n := min(len(*q), maxBatch)
	if n == 0 {
		return nil
	}
	batch := make([]*pending[P, T], n)
	copy(batch, *q)
	*q = append((*q)[:0], (*q)[n:]...)
	return batch
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// finish closes the done channels of rs: their callers return.
func finish[P, T any](rs []*pending[P, T]) {
	for _, r := range rs {
		close(r.done)
	}
}

// share is one kind's part of a shared write: its statements, and settle,
// called after the write with the rows each of them affected or with the
// write's error (then nothing was written; alone tells that the write held
// only this share's statements, so the error is theirs). settle answers
// the requests the write settled and returns the single-request work left
// for the others (nil when none is left), which answers them in turn.
type share struct {
	stmts  []stmt
	settle func(affected []int64, err error, alone bool) (rest func(ctx context.Context))
}

// flushWrites writes a batch: the shares of the four kinds in one write,
// then what is left of each kind in a goroutine of its own.
func (s *Store) flushWrites(ctx context.Context, b *writeBatch) {
	shares := []share{
		s.insertShare(b.inserts),
		s.registerShare(b.registers),
		s.decideShare(b.decides),
		s.roundShare(b.rounds),
	}
	size := 0
	for _, sh := range shares {
		size += len(sh.stmts)
	}
	all := make([]stmt, 0, size)
	for _, sh := range shares {
		all = append(all, sh.stmts...)
	}
	var affected []int64
	var err error
	switch len(all) {
	case 0:
	case 1:
		// One statement: autocommit, durable when it returns.
		var n int64
		n, err = s.exec(ctx, s.sql, all[0].query, all[0].args...)
		affected = []int64{n}
	default:
		affected, err = s.write(ctx, all...)
	}
	off := 0
	for _, sh := range shares {
		alone := len(sh.stmts) == len(all)
		if sh.settle == nil {
			continue
		}
		var mine []int64
		if err == nil {
			mine = affected[off : off+len(sh.stmts)]
		}
		off += len(sh.stmts)
		if rest := sh.settle(mine, err, alone); rest != nil {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
				defer cancel()
				rest(ctx)
			}()
		}
	}
}

// withKnown is a request with the record this store remembers for its gid
// (see known.go).
type withKnown[P, T any] struct {
	r     *pending[P, T]
	known *tcc.Transaction
}

// splitKnown splits batch (requests of one kind) into the first request of
// each gid whose record this store remembers (taking it from the memory),
// the first of each gid whose record it does not, and the later requests
// for a gid already seen.
func splitKnown[P, T any](k *knownRecords, batch []*pending[P, T], gid func(P) string) (known []withKnown[P, T], unknown, rest []*pending[P, T]) {
	first, rest := splitByGID(batch, gid)
	for _, r := range first {
		if rec := k.take(gid(r.p)); rec != nil {
			known = append(known, withKnown[P, T]{r, rec})
		} else {
			unknown = append(unknown, r)
		}
	}
	return known, unknown, rest
}

// splitByGID returns the requests whose gid is the first of its kind in the
// batch, and the rest.
func splitByGID[P, T any](batch []*pending[P, T], gid func(P) string) (first, rest []*pending[P, T]) {
	seen := make(map[string]bool, len(batch))
	for _, r := range batch {
		g := gid(r.p)
		if seen[g] {
			rest = append(rest, r)
			continue
		}
		seen[g] = true
		first = append(first, r)
	}
	return first, rest
}

func placeholders(n int) string {
	return "?" + strings.Repeat(", ?", n-1)
}

// ---- Begin -----------------------------------------------------------

type unit struct{}

// insertShare writes the batch's records and their branches with two
// multi-row INSERTs; if they fail, each Begin is written again alone, for
// its own result (a duplicate gid fails only its own).
func (s *Store) insertShare(batch []*pending[*tcc.Transaction, unit]) share {
	if len(batch) == 0 {
		return share{}
	}
	txs := make([]*tcc.Transaction, len(batch))
	for i, r := range batch {
		txs[i] = r.p
	}
	oneByOne := func(ctx context.Context) {
		for _, r := range batch {
			if r.err = s.insertAll(ctx, []*tcc.Transaction{r.p}); r.err == nil {
				s.known.put(r.p, r.p.CreatedAt)
			}
			close(r.done)
		}
	}
	stmts, err := insertStatements(txs)
	if err != nil {
		// A record that cannot be written (its labels): each alone, for
		// its own error.
		return share{settle: func([]int64, error, bool) func(context.Context) { return oneByOne }}
	}
	return share{stmts: stmts, settle: func(_ []int64, err error, alone bool) func(context.Context) {
		switch {
		case err == nil:
			for _, tx := range txs {
				s.known.put(tx, tx.CreatedAt)
			}
		case alone && len(batch) == 1:
			batch[0].err = s.interpret("insert transaction", err)
		default:
			return oneByOne
		}
		finish(batch)
		return nil
	}}
}

// ---- RegisterBranch ----------------------------------------------------

// registerShare registers the branches of records this store remembers
// (known.go): for each, the record's compare-and-set (TRYING, under the
// branch limit, at the remembered version) and an insert of the branch
// that happens only if that matched. The record after the call is then the
// remembered one with the branch added, without reading it. The other
// requests (the record is not remembered, changed since, is decided or
// full, the branch id is a duplicate) go to the paths that read the record
// and report exactly why.
func (s *Store) registerShare(batch []*pending[tcc.AddBranchParams, *tcc.Transaction]) share {
	if len(batch) == 0 {
		return share{}
	}
	known, unknown, rest := splitKnown(&s.known, batch, func(p tcc.AddBranchParams) string { return p.Branch.GID })
	d := s.d()
	stmts := make([]stmt, 0, 2*len(known))
	// at[i] is the index in stmts of known[i]'s first statement.
	at := make([]int, len(known)+1)
	for i, it := range known {
		p, b := it.r.p, it.r.p.Branch
		at[i] = len(stmts)
		stmts = append(stmts, d.thenInsert(
			stmt{`UPDATE transaction_record` + d.pk() + ` SET branch_count = branch_count + 1, version = version + 1, updated_us = ?
				WHERE gid = ? AND state = ? AND branch_count < ? AND version = ?`,
				[]any{micros(p.Now), b.GID, string(tcc.StateTrying), p.MaxBranches, it.known.Version}},
			"branch_record", "gid, branch_id, participant, payload, payload_digest, state, created_us, updated_us",
			[]any{b.GID, b.BranchID, b.Participant, nonNil(b.Payload), b.PayloadDigest, string(tcc.BranchRegistered),
				micros(p.Now), micros(p.Now)})...)
	}
	at[len(known)] = len(stmts)
	return share{stmts: stmts, settle: func(affected []int64, err error, _ bool) func(context.Context) {
		for i, it := range known {
			if err != nil || !allOne(affected[at[i]:at[i+1]]) {
				unknown = append(unknown, it.r)
				continue
			}
			tx := registered(it.known, it.r.p)
			s.known.put(tx, it.r.p.Now)
			it.r.res = tx
			close(it.r.done)
		}
		if len(unknown)+len(rest) == 0 {
			return nil
		}
		return func(ctx context.Context) {
			if len(unknown) > 1 && s.registerBatch(ctx, unknown) {
				finish(unknown)
				unknown = nil
			}
			for _, r := range append(unknown, rest...) {
				r.res, r.err = s.registerBranch(ctx, r.p)
				close(r.done)
			}
		}
	}}
}

// allOne reports whether every statement changed exactly one row.
func allOne(affected []int64) bool {
	for _, n := range affected {
		if n != 1 {
			return false
		}
	}
	return true
}

// registerBatch registers every branch of batch (distinct gids) in one
// database transaction, or nothing and returns false.
func (s *Store) registerBatch(ctx context.Context, batch []*pending[tcc.AddBranchParams, *tcc.Transaction]) bool {
	dbtx, err := s.begin(ctx)
	if err != nil {
		return false
	}
	defer func() { _ = dbtx.Rollback() }()
	n := len(batch)
	gids := make([]any, 0, n)
	var nowCase, maxCase strings.Builder
	caseArgs := make([]any, 0, 4*n)
	then := " WHEN ? THEN " + s.d().bigint()
	for _, r := range batch {
		gids = append(gids, r.p.Branch.GID)
		nowCase.WriteString(then)
		caseArgs = append(caseArgs, r.p.Branch.GID, micros(r.p.Now))
	}
	for _, r := range batch {
		maxCase.WriteString(then)
		caseArgs = append(caseArgs, r.p.Branch.GID, r.p.MaxBranches)
	}
	args := append([]any{}, caseArgs[:2*n]...)
	args = append(args, string(tcc.StateTrying))
	args = append(args, caseArgs[2*n:]...)
	args = append(args, gids...)
	updated, err := s.exec(ctx, dbtx, `UPDATE transaction_record`+s.pk()+`
		SET branch_count = branch_count + 1, version = version + 1, updated_us = CASE gid`+nowCase.String()+` END
		WHERE state = ? AND branch_count < CASE gid`+maxCase.String()+` END AND gid IN (`+placeholders(n)+`)`, args...)
	if err != nil || updated != int64(n) {
		return false
	}
	branches := make([]tcc.Branch, 0, n)
	for _, r := range batch {
		b := r.p.Branch
		b.CreatedAt, b.UpdatedAt = r.p.Now, r.p.Now
		branches = append(branches, b)
	}
	if err := s.insertBranches(ctx, dbtx, branches); err != nil {
		return false
	}
	txs, err := s.loadMany(ctx, dbtx, gids)
	if err != nil || len(txs) != n {
		return false
	}
	if err := s.commit(dbtx); err != nil {
		// The outcome is unknown; each request is retried alone, which is
		// idempotent (a repeat of a registration that did commit is
		// reported as a duplicate with the branch in the record).
		return false
	}
	for _, r := range batch {
		r.res = txs[r.p.Branch.GID]
		s.known.put(r.res, r.p.Now)
	}
	return true
}

// loadMany reads several records with their branches in one round trip.
func (s *Store) loadMany(ctx context.Context, q querier, gids []any) (map[string]*tcc.Transaction, error) {
	s.roundTrips.Add(1)
	query := strings.Replace(loadQuery, "WHERE r.gid = ? ORDER BY b.branch_id",
		"WHERE r.gid IN ("+placeholders(len(gids))+") ORDER BY r.gid, b.branch_id", 1)
	rows, err := q.QueryContext(ctx, s.bind(query), gids...)
	if err != nil {
		return nil, s.interpret("get transactions", err)
	}
	defer rows.Close()
	out := make(map[string]*tcc.Transaction, len(gids))
	if err := s.scanLoaded(rows, func(tx *tcc.Transaction) { out[tx.GID] = tx }); err != nil {
		return nil, err
	}
	return out, nil
}

// ---- Decide -------------------------------------------------------------

type decision struct {
	tx  *tcc.Transaction
	won bool
}

// minDecideBatch: a batched decision of records this store does not
// remember costs five round trips whatever its size, a single one two;
// below this size the single path is cheaper.
const minDecideBatch = 3

// decideShare decides the requests whose records are remembered, each by a
// compare-and-set on state and version, and answers them with the
// remembered records, decided. The others (the record is not remembered,
// or the compare-and-set matched nothing because another instance
// registered a branch or decided it meanwhile) go to the paths that read
// the record. Deciding again after a failed write is safe: a decision that
// did commit is then reported as not won, with the record, and the lease
// expiry hands its delivery to the recovery loop.
func (s *Store) decideShare(batch []*pending[tcc.DecideParams, decision]) share {
	if len(batch) == 0 {
		return share{}
	}
	known, unknown, rest := splitKnown(&s.known, batch, func(p tcc.DecideParams) string { return p.GID })
	stmts := make([]stmt, len(known))
	for i, it := range known {
		stmts[i] = decideRecord(s.d(), it.r.p, it.known.Version)
	}
	return share{stmts: stmts, settle: func(affected []int64, err error, _ bool) func(context.Context) {
		for i, it := range known {
			if err != nil || affected[i] != 1 {
				unknown = append(unknown, it.r)
				continue
			}
			it.r.res = decision{tx: decided(it.known, it.r.p), won: true}
			close(it.r.done)
		}
		if len(unknown)+len(rest) == 0 {
			return nil
		}
		return func(ctx context.Context) {
			if len(unknown) >= minDecideBatch && s.decideBatch(ctx, unknown) {
				finish(unknown)
				unknown = nil
			}
			for _, r := range append(unknown, rest...) {
				r.res.tx, r.res.won, r.err = s.decide(ctx, r.p)
				close(r.done)
			}
		}
	}}
}

// decideRecord is the compare-and-set TRYING -> decided of one record;
// with a version (above 0) it also requires the record's version. It
// writes the decision's history too (decided_by, decided_instance with
// decided_us and abort_reason: the DECIDED event, history.go).
func decideRecord(d dialect, p tcc.DecideParams, version int64) stmt {
	query := `UPDATE transaction_record` + d.pk() + `
		SET state = ?, version = version + 1, lease_owner = ?, next_attempt_us = ?, abort_reason = ?, decided_us = ?, updated_us = ?,
		    decided_by = ?, decided_instance = ?
		WHERE gid = ? AND state = ?`
	args := []any{string(p.Outcome.DecidedState()), p.Owner, micros(p.LeaseUntil), abortReason(p), micros(p.Now), micros(p.Now),
		string(p.Cause), p.Owner, p.GID, string(tcc.StateTrying)}
	if version > 0 {
		query += ` AND version = ?`
		args = append(args, version)
	}
	return stmt{query, args}
}

// decideStatement builds the compare-and-set TRYING -> decided of several
// records, each with its own decision, lease and time.
func decideStatement(d dialect, params []tcc.DecideParams) (string, []any) {
	var state, owner, next, reason, decided, cause strings.Builder
	var sArgs, oArgs, nArgs, rArgs, dArgs, cArgs, in []any
	for _, p := range params {
		for _, b := range []*strings.Builder{&state, &owner, &reason, &cause} {
			b.WriteString(" WHEN ? THEN ?")
		}
		for _, b := range []*strings.Builder{&next, &decided} {
			b.WriteString(" WHEN ? THEN " + d.bigint())
		}
		sArgs = append(sArgs, p.GID, string(p.Outcome.DecidedState()))
		oArgs = append(oArgs, p.GID, p.Owner)
		nArgs = append(nArgs, p.GID, micros(p.LeaseUntil))
		rArgs = append(rArgs, p.GID, abortReason(p))
		dArgs = append(dArgs, p.GID, micros(p.Now))
		cArgs = append(cArgs, p.GID, string(p.Cause))
		in = append(in, p.GID)
	}
	args := make([]any, 0, 17*len(params)+1)
	args = append(args, sArgs...)
	args = append(args, oArgs...)
	args = append(args, nArgs...)
	args = append(args, rArgs...)
	args = append(args, dArgs...)
	args = append(args, dArgs...)
	args = append(args, cArgs...)
	args = append(args, oArgs...)
	args = append(args, string(tcc.StateTrying))
	args = append(args, in...)
	return `UPDATE transaction_record` + d.pk() + `
		SET state = CASE gid` + state.String() + ` END, version = version + 1, lease_owner = CASE gid` + owner.String() + ` END,
		    next_attempt_us = CASE gid` + next.String() + ` END, abort_reason = CASE gid` + reason.String() + ` END,
		    decided_us = CASE gid` + decided.String() + ` END, updated_us = CASE gid` + decided.String() + ` END,
		    decided_by = CASE gid` + cause.String() + ` END, decided_instance = CASE gid` + owner.String() + ` END
		WHERE state = ? AND gid IN (` + placeholders(len(in)) + `)`, args
}

// decideBatch decides every request of batch (distinct gids) in one
// database transaction: the records are locked and read, the TRYING ones
// are decided by one compare-and-set, and all are read back. It returns
// false, having written nothing, if the batch could not be applied whole.
func (s *Store) decideBatch(ctx context.Context, batch []*pending[tcc.DecideParams, decision]) bool {
	dbtx, err := s.begin(ctx)
	if err != nil {
		return false
	}
	defer func() { _ = dbtx.Rollback() }()
	gids := make([]any, 0, len(batch))
	for _, r := range batch {
		gids = append(gids, r.p.GID)
	}
	lock := s.forUpdate()
	s.roundTrips.Add(1)
	rows, err := dbtx.QueryContext(ctx, s.bind(`SELECT gid FROM transaction_record WHERE state = ? AND gid IN (`+placeholders(len(gids))+`)`+lock),
		append([]any{string(tcc.StateTrying)}, gids...)...)
	if err != nil {
		return false
	}
	trying := map[string]bool{}
	for rows.Next() {
		var g string
		if rows.Scan(&g) == nil {
			trying[g] = true
		}
	}
	if rows.Close() != nil || rows.Err() != nil {
		return false
	}
	if len(trying) > 0 {
		var params []tcc.DecideParams
		for _, r := range batch {
			if trying[r.p.GID] {
				params = append(params, r.p)
			}
		}
		query, args := decideStatement(s.d(), params)
		n, err := s.exec(ctx, dbtx, query, args...)
		if err != nil || n != int64(len(params)) {
			return false
		}
	}
	txs, err := s.loadMany(ctx, dbtx, gids)
	if err != nil {
		return false
	}
	if err := s.commit(dbtx); err != nil {
		// Unknown outcome: deciding again alone is safe (a decision that
		// did commit is then reported as not won, with the record, and the
		// lease expiry hands its delivery to the recovery loop).
		return false
	}
	for _, r := range batch {
		tx, ok := txs[r.p.GID]
		if !ok {
			r.err = fmt.Errorf("%w: %s", tcc.ErrNotFound, r.p.GID)
			continue
		}
		r.res = decision{tx: tx, won: trying[r.p.GID]}
	}
	return true
}

// ---- RecordRound ---------------------------------------------------------

// minRoundBatch: finishing rounds (every called branch done) of this many
// transactions with the same outcome share one statement for their
// branches.
const minRoundBatch = 2

// roundShare records the batch's rounds: the finishing rounds of several
// transactions with the same outcome as one statement for all their done
// branches and each record's compare-and-set, every other round as its own
// statements (roundStatements). Each record's compare-and-set count tells
// its round its exact result, as for a single round. After a failed write
// the rounds are recorded one by one, which is idempotent.
func (s *Store) roundShare(batch []*pending[tcc.RoundParams, unit]) share {
	if len(batch) == 0 {
		return share{}
	}
	first, rest := splitByGID(batch, func(p tcc.RoundParams) string { return p.GID })
	var groups [2][]*pending[tcc.RoundParams, unit]
	var single []*pending[tcc.RoundParams, unit]
	for _, r := range first {
		p := r.p
		if p.Finish && len(p.Failed) == 0 && len(p.Conflicts) == 0 && len(p.Done) > 0 {
			i := 0
			if p.Outcome == tcc.Abort {
				i = 1
			}
			groups[i] = append(groups[i], r)
		} else {
			single = append(single, r)
		}
	}
	var stmts []stmt
	// cas[i] is the index in stmts of the compare-and-set of ordered[i].
	var ordered []*pending[tcc.RoundParams, unit]
	var cas []int
	for _, g := range groups {
		if len(g) < minRoundBatch {
			single = append(single, g...)
			continue
		}
		stmts = append(stmts, finishBranches(s.d(), g))
		// The history's facts of the whole group in one INSERT.
		var facts []tcc.Event
		for _, r := range g {
			facts = append(facts, roundFacts(r.p)...)
		}
		if len(facts) > 0 {
			stmts = append(stmts, eventsInsert(facts))
		}
		for _, r := range g {
			stmts = append(stmts, trimAttempts(r.p)...)
		}
		for _, r := range g {
			ordered, cas = append(ordered, r), append(cas, len(stmts))
			stmts = append(stmts, casWithEvent(s.d(), recordFinish(s.d(), r.p), r.p)...)
		}
	}
	for _, r := range single {
		rs, c := s.roundStatements(r.p)
		ordered, cas = append(ordered, r), append(cas, len(stmts)+c)
		stmts = append(stmts, rs...)
	}
	return share{stmts: stmts, settle: func(affected []int64, err error, _ bool) func(context.Context) {
		if err != nil {
			rest = append(ordered, rest...)
		} else {
			for i, r := range ordered {
				if affected[cas[i]] == 0 {
					r.err = fmt.Errorf("record round of %s at version %d: %w", r.p.GID, r.p.Version, tcc.ErrConflict)
				}
				close(r.done)
			}
		}
		if len(rest) == 0 {
			return nil
		}
		return func(ctx context.Context) {
			for _, r := range rest {
				r.err = s.recordRound(ctx, r.p)
				close(r.done)
			}
		}
	}}
}

// finishBranches is the statement that marks the done branches of
// finishing rounds (group, same outcome) done.
//
// A finishing round's Done is every branch still REGISTERED in its record
// (registration ends with the decision), so "REGISTERED branches of these
// gids" is exactly the union of the Done lists; the branch id list is a
// guard. The branch facts are stored whatever the compare-and-set of the
// record says, as in a single round.
func finishBranches(d dialect, group []*pending[tcc.RoundParams, unit]) stmt {
	branchDone := group[0].p.Outcome.BranchDone()
	gids := make([]any, 0, len(group))
	var nowCase, instCase, latCase strings.Builder
	var nowArgs, instArgs, latArgs, ids []any
	seenID := map[string]bool{}
	for _, r := range group {
		gids = append(gids, r.p.GID)
		nowCase.WriteString(" WHEN ? THEN " + d.bigint())
		nowArgs = append(nowArgs, r.p.GID, micros(r.p.Now))
		instCase.WriteString(" WHEN ? THEN ?")
		instArgs = append(instArgs, r.p.GID, r.p.Instance)
		// The latency is per branch: a CASE on the branch id inside the
		// gid's arm, so that the database compares a row with the group's
		// gids and then that gid's few branches, not with every (gid,
		// branch) pair of the group.
		latency := callLatencies(r.p)
		latCase.WriteString(" WHEN ? THEN CASE branch_id")
		latArgs = append(latArgs, r.p.GID)
		for _, id := range r.p.Done {
			latCase.WriteString(" WHEN ? THEN " + d.bigint())
			latArgs = append(latArgs, id, latency[id])
			if !seenID[id] {
				seenID[id] = true
				ids = append(ids, id)
			}
		}
		latCase.WriteString(" ELSE 0 END")
	}
	args := append([]any{string(branchDone)}, nowArgs...)
	args = append(args, instArgs...)
	args = append(args, latArgs...)
	args = append(args, string(tcc.BranchRegistered))
	args = append(args, gids...)
	args = append(args, ids...)
	// The successful calls' latency and instance go with the branch (its
	// history event, history.go).
	return stmt{`UPDATE branch_record SET state = ?, attempts = attempts + 1, last_error = '',
			updated_us = CASE gid` + nowCase.String() + ` END,
			done_instance = CASE gid` + instCase.String() + ` END,
			done_latency_us = CASE gid` + latCase.String() + ` ELSE 0 END
			WHERE state = ? AND gid IN (` + placeholders(len(gids)) + `) AND branch_id IN (` + placeholders(len(ids)) + `)`, args}
}
