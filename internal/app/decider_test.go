package app_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/client"
	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
)

// deciderEnv is a coordinator (env) plus an initiator: its own database
// (the same backend as the coordinator's, a different database) with an
// orders table and the decision table, a Decider over it served on
// loopback, and a client that names that decider at Begin.
type deciderEnv struct {
	*env
	db      *gorm.DB
	decider *client.Decider
	target  string // the decider's target named at Begin
	cl      *client.Client
	// down makes the served decider answer UNAVAILABLE (gRPC) or 503
	// (HTTP), as an unreachable decider looks to the coordinator.
	down atomic.Bool
	// loseCommit makes the client's Commit calls fail with UNAVAILABLE
	// without reaching the coordinator: a Commit lost after the local
	// commit.
	loseCommit atomic.Bool
	// asks counts the decider calls that reached the served decider.
	asks atomic.Int64
}

// downDecider wraps the Decider with the env's down switch.
type downDecider struct {
	tccv1.UnimplementedDeciderServiceServer
	d *deciderEnv
}

func (s downDecider) Decide(ctx context.Context, req *tccv1.DecideRequest) (*tccv1.DecideResponse, error) {
	s.d.asks.Add(1)
	if s.d.down.Load() {
		return nil, status.Error(codes.Unavailable, "decider down (test)")
	}
	return s.d.decider.Decide(ctx, req)
}

// setupDecider starts everything on backend b; overHTTP serves the decider
// over HTTP (its target is then the base URL) instead of gRPC.
func setupDecider(t *testing.T, b dbtest.Backend, overHTTP bool, opts ...option) *deciderEnv {
	t.Helper()
	d := &deciderEnv{env: setup(t, b.New(t), opts...)}
	d.db = dbtest.Open(t, b.New(t))
	ctx := ctxT(t)
	if err := client.EnsureDecisionTable(ctx, d.db); err != nil {
		t.Fatal(err)
	}
	if err := client.EnsureDecisionTable(ctx, d.db); err != nil {
		t.Fatalf("EnsureDecisionTable is not repeatable: %v", err)
	}
	if err := d.db.Exec(`CREATE TABLE orders (id VARCHAR(128) NOT NULL PRIMARY KEY, state VARCHAR(16) NOT NULL)`).Error; err != nil {
		t.Fatal(err)
	}
	d.decider = client.NewDecider(d.db)
	if overHTTP {
		h := http.NewServeMux()
		h.Handle("/settle/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d.asks.Add(1)
			if d.down.Load() {
				http.Error(w, `{"code":"UNAVAILABLE","message":"decider down (test)"}`, http.StatusServiceUnavailable)
				return
			}
			d.decider.ServeHTTP(w, r)
		}))
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		d.target = srv.URL + "/settle"
	} else {
		s := grpc.NewServer()
		tccv1.RegisterDeciderServiceServer(s, downDecider{d: d})
		d.target = grpctest.Serve(t, s)
	}
	lose := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == tccv1.CoordinatorService_Commit_FullMethodName && d.loseCommit.Load() {
			return status.Error(codes.Unavailable, "commit lost (test)")
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	cl, err := client.New(d.app.Addr(), client.WithDecider(d.target), client.WithDialOptions(grpc.WithChainUnaryInterceptor(lose)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	d.cl = cl
	return d
}

// beginTried begins gid naming the decider, with a 10s timeout, and tries
// branches a and b on the test participant.
func (d *deciderEnv) beginTried(t *testing.T, gid string) *client.Txn {
	t.Helper()
	ctx := ctxT(t)
	tx, err := d.cl.Begin(ctx, client.BeginOptions{GID: gid, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("begin %s: %v", gid, err)
	}
	if got := tx.Begun().GetDecider(); got != d.target {
		t.Fatalf("begun with decider %q, want %q", got, d.target)
	}
	for _, b := range []string{"a", "b"} {
		if err := tx.Try(ctx, b, d.part.Addr(), []byte("pay-"+b)); err != nil {
			t.Fatalf("try %s/%s: %v", gid, b, err)
		}
	}
	return tx
}

// placeOrder is the initiator's business change.
func placeOrder(gid string) func(tx *gorm.DB) error {
	return func(tx *gorm.DB) error {
		return tx.Exec(`INSERT INTO orders (id, state) VALUES (?, 'paid')`, gid).Error
	}
}

// orders returns how many order rows gid has (0 or 1).
func (d *deciderEnv) orders(t *testing.T, gid string) int {
	t.Helper()
	var n int64
	if err := d.db.Raw(`SELECT COUNT(*) FROM orders WHERE id = ?`, gid).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// decision returns gid's row in the decision table ("" if none).
func (d *deciderEnv) decision(t *testing.T, gid string) string {
	t.Helper()
	var out []string
	if err := d.db.Raw(`SELECT outcome FROM settle_decision WHERE gid = ?`, gid).Scan(&out).Error; err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		return ""
	}
	return out[0]
}

// pastDeadline moves the clock past gid's deadline.
func (d *deciderEnv) pastDeadline(t *testing.T, gid string) {
	t.Helper()
	d.clock.Advance(d.get(t, gid).GetDeadline().AsTime().Sub(d.clock.Now()) + time.Second)
}

// wantAll checks the end state: gid final in want, each branch confirmed
// (committed) or cancelled (aborted) exactly once and never the other, and
// the order row present exactly when committed.
func (d *deciderEnv) wantAll(t *testing.T, gid string, want tccv1.TransactionState) {
	t.Helper()
	eventually(t, gid+" "+want.String(), func() bool { return d.get(t, gid).GetState() == want })
	do, not := "Confirm", "Cancel"
	orders, decision := 1, client.OutcomeCommit
	if want == aborted {
		do, not = "Cancel", "Confirm"
		orders, decision = 0, client.OutcomeAbort
	}
	for _, b := range []string{"a", "b"} {
		if n, m := d.part.Count(do, gid, b), d.part.Attempts(not, gid, b); n != 1 || m != 0 {
			t.Fatalf("branch %s: %s applied %d times, %s attempted %d times", b, do, n, not, m)
		}
	}
	if n := d.orders(t, gid); n != orders {
		t.Fatalf("%d order rows for %s, want %d", n, gid, orders)
	}
	if got := d.decision(t, gid); got != decision && !(want == aborted && got == "") {
		t.Fatalf("decision row %q, want %q", got, decision)
	}
}

// decidedBy returns the cause of gid's decision from its history.
func (d *deciderEnv) decidedBy(t *testing.T, gid string) adminv1.DecisionCause {
	t.Helper()
	admin := adminv1.NewAdminServiceClient(grpctest.Dial(t, d.app.Addr()))
	h, err := admin.GetTransactionHistory(ctxT(t), &adminv1.GetTransactionHistoryRequest{Gid: gid})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range h.GetEvents() {
		if e.GetKind() == adminv1.EventKind_EVENT_KIND_DECIDED {
			return e.GetCause()
		}
	}
	t.Fatalf("%s has no decision in its history", gid)
	return 0
}

// TestDeciderCommitLocal: the plain path. The business change and the
// commit row commit together, Commit follows, the branches are confirmed.
func TestDeciderCommitLocal(t *testing.T) {
	for _, b := range dbtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			d := setupDecider(t, b, false)
			tx := d.beginTried(t, "plain")
			if _, err := tx.CommitLocal(ctxT(t), d.db, placeOrder("plain")); err != nil {
				t.Fatalf("commit local: %v", err)
			}
			d.wantAll(t, "plain", committed)
			if c := d.decidedBy(t, "plain"); c != adminv1.DecisionCause_DECISION_CAUSE_COMMIT {
				t.Fatalf("decided by %v", c)
			}
			if n := d.asks.Load(); n != 0 {
				t.Fatalf("decider asked %d times on the plain path", n)
			}
		})
	}
}

// TestDeciderRaceLocalFirst: the local transaction holds the key (it has
// inserted its commit row and not yet committed) when the deadline passes
// and the decider is asked, by the recovery loop and directly. The
// decider's insert-if-absent waits for the local transaction; when it
// commits, every answer is COMMIT and the branches are confirmed.
func TestDeciderRaceLocalFirst(t *testing.T) {
	for _, b := range dbtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			d := setupDecider(t, b, false)
			const gid = "local-first"
			tx := d.beginTried(t, gid)
			// Pause the local transaction right after its commit row is
			// inserted (a real statement on the real database; the hook
			// only delays what follows it, the COMMIT).
			inserted, release := make(chan struct{}), make(chan struct{})
			var once, releaseOnce sync.Once
			// On failure too, so that the local transaction ends and the
			// databases can be dropped.
			t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
			if err := d.db.Callback().Raw().After("gorm:raw").Register("test:pause_after_commit_row", func(db *gorm.DB) {
				if strings.Contains(db.Statement.SQL.String(), "INSERT INTO settle_decision") && len(db.Statement.Vars) > 1 && db.Statement.Vars[1] == client.OutcomeCommit {
					once.Do(func() { close(inserted) })
					<-release
				}
			}); err != nil {
				t.Fatal(err)
			}
			commitErr := make(chan error, 1)
			go func() {
				_, err := tx.CommitLocal(context.Background(), d.db, placeOrder(gid))
				commitErr <- err
			}()
			<-inserted
			// The deadline passes while the local transaction is open: the
			// recovery loop asks the decider, and so does this test.
			d.pastDeadline(t, gid)
			type answer struct {
				resp          *tccv1.DecideResponse
				err           error
				beforeRelease bool
			}
			var released atomic.Bool
			direct := make(chan answer, 1)
			go func() {
				resp, err := d.decider.Decide(context.Background(), &tccv1.DecideRequest{Gid: gid})
				direct <- answer{resp, err, !released.Load()}
			}()
			d.waitBlocked(t, b.Name)
			released.Store(true)
			releaseOnce.Do(func() { close(release) })
			a := <-direct
			if a.err != nil || a.resp.GetOutcome() != tccv1.Outcome_OUTCOME_COMMIT || a.beforeRelease {
				t.Fatalf("decider answered %v, %v, before the local commit: %v; want COMMIT after it", a.resp.GetOutcome(), a.err, a.beforeRelease)
			}
			if err := <-commitErr; err != nil {
				t.Fatalf("commit local: %v", err)
			}
			d.wantAll(t, gid, committed)
			if got := d.get(t, gid); got.GetNeedsAttention() {
				t.Fatalf("flagged: %v", got)
			}
		})
	}
}

// waitBlocked waits until the decider's insert is waiting for the local
// transaction: on MySQL/MariaDB until the server lists the decider's
// INSERT IGNORE as executing in this database (InnoDB's LOCK WAIT state is
// not always listed in INNODB_TRX for an autocommit statement on MariaDB);
// SQLite's wait is not observable, so there it gives the decider a bounded
// 300ms to (wrongly) answer before the test goes on. Either way the test
// then checks that the answer came after the local commit.
func (d *deciderEnv) waitBlocked(t *testing.T, backend string) {
	t.Helper()
	if backend != "mysql" {
		time.Sleep(300 * time.Millisecond)
		return
	}
	eventually(t, "the decider's insert waiting for the local transaction", func() bool {
		var n int64
		if err := d.db.Raw(`SELECT COUNT(*) FROM information_schema.PROCESSLIST
			WHERE DB = DATABASE() AND COMMAND = 'Query' AND INFO LIKE 'INSERT IGNORE INTO settle_decision%'`).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
}

// TestDeciderRaceDeciderFirst: the initiator is slow; the deadline passes
// before its local transaction, the recovery loop asks the decider, which
// inserts (gid, abort) and answers ABORT: the transaction aborts (cause
// DECIDER) and the branches are cancelled. The late CommitLocal's insert
// then fails on the key: its local transaction (the order) is rolled back
// and it reports ErrDecidedAbort.
func TestDeciderRaceDeciderFirst(t *testing.T) {
	for _, b := range dbtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			d := setupDecider(t, b, false)
			const gid = "decider-first"
			tx := d.beginTried(t, gid)
			d.pastDeadline(t, gid)
			eventually(t, "decided by the decider", func() bool { return d.get(t, gid).GetState() != trying })
			if r := d.get(t, gid).GetAbortReason(); !strings.Contains(r, "decider") {
				t.Fatalf("abort reason %q", r)
			}
			_, err := tx.CommitLocal(ctxT(t), d.db, placeOrder(gid))
			if !errors.Is(err, client.ErrDecidedAbort) || !strings.Contains(err.Error(), "rolled back") {
				t.Fatalf("late commit local: %v, want ErrDecidedAbort, rolled back", err)
			}
			d.wantAll(t, gid, aborted)
			if c := d.decidedBy(t, gid); c != adminv1.DecisionCause_DECISION_CAUSE_DECIDER {
				t.Fatalf("decided by %v, want DECIDER", c)
			}
		})
	}
}

// TestDeciderLostCommit: the initiator commits locally and its Commit is
// lost. At the deadline the recovery loop asks the decider, which answers
// COMMIT, and the branches are confirmed. A participant's check-back
// before that is answered PENDING, never CANCEL.
func TestDeciderLostCommit(t *testing.T) {
	for _, b := range dbtest.Backends() {
		for _, overHTTP := range []bool{false, true} {
			name := b.Name + "/grpc"
			if overHTTP {
				name = b.Name + "/http"
			}
			t.Run(name, func(t *testing.T) {
				d := setupDecider(t, b, overHTTP)
				const gid = "lost-commit"
				tx := d.beginTried(t, gid)
				d.loseCommit.Store(true)
				_, err := tx.CommitLocal(ctxT(t), d.db, placeOrder(gid))
				if !errors.Is(err, client.ErrCommittedLocally) {
					t.Fatalf("commit local with the Commit lost: %v, want ErrCommittedLocally", err)
				}
				if got := d.get(t, gid).GetState(); got != trying {
					t.Fatalf("state %v after a lost Commit", got)
				}
				if v := d.checkBack(t, gid); v.GetVerdict() != tccv1.Verdict_VERDICT_PENDING {
					t.Fatalf("check-back before the deadline: %v", v)
				}
				d.pastDeadline(t, gid)
				d.wantAll(t, gid, committed)
				if c := d.decidedBy(t, gid); c != adminv1.DecisionCause_DECISION_CAUSE_DECIDER {
					t.Fatalf("decided by %v, want DECIDER", c)
				}
				if v := d.checkBack(t, gid); v.GetVerdict() != tccv1.Verdict_VERDICT_CONFIRM {
					t.Fatalf("check-back after: %v", v)
				}
			})
		}
	}
}

func (d *deciderEnv) checkBack(t *testing.T, gid string) *tccv1.CheckBackResponse {
	t.Helper()
	r, err := d.coord.CheckBack(ctxT(t), &tccv1.CheckBackRequest{Gid: gid, BranchId: "a"})
	if err != nil {
		t.Fatalf("check-back %s: %v", gid, err)
	}
	return r
}

// TestDeciderUnreachable: the Commit is lost and the decider is down at the
// deadline. The transaction stays TRYING and is asked again with backoff;
// check-backs get PENDING with a retry-after; past the retry horizon it is
// flagged as needing attention. When the decider is back, an operator's
// RetryNow has it asked at once; it answers COMMIT and the transaction
// completes.
func TestDeciderUnreachable(t *testing.T) {
	for _, b := range dbtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			d := setupDecider(t, b, false, withHTTP, func(c *app.Config) { c.Coordinator.RetryHorizon = 30 * time.Second })
			const gid = "unreachable"
			tx := d.beginTried(t, gid)
			d.loseCommit.Store(true)
			if _, err := tx.CommitLocal(ctxT(t), d.db, placeOrder(gid)); !errors.Is(err, client.ErrCommittedLocally) {
				t.Fatalf("commit local: %v", err)
			}
			d.down.Store(true)
			d.pastDeadline(t, gid)
			eventually(t, "first ask postponed", func() bool { return d.get(t, gid).GetAttempts() >= 1 })
			got := d.get(t, gid)
			if got.GetState() != trying || got.GetNeedsAttention() || !strings.Contains(got.GetLastError(), "decider") {
				t.Fatalf("after the first failed ask: %v attention %v last error %q", got.GetState(), got.GetNeedsAttention(), got.GetLastError())
			}
			delay := got.GetNextAttemptTime().AsTime().Sub(got.GetUpdateTime().AsTime())
			if delay <= 0 || delay > time.Second {
				t.Fatalf("first retry of the decider in %s, want the backoff's first delay (<= 1s)", delay)
			}
			v := d.checkBack(t, gid)
			if v.GetVerdict() != tccv1.Verdict_VERDICT_PENDING || v.GetRetryAfter().AsDuration() < time.Second {
				t.Fatalf("check-back while the decider is down: %v", v)
			}
			// Retried with the delivery backoff (1s doubling, up to 20%
			// jitter off), never decided, until the horizon.
			for i := 0; i < 40 && !d.get(t, gid).GetNeedsAttention(); i++ {
				cur := d.get(t, gid)
				want := time.Duration(1<<(cur.GetAttempts()-1)) * time.Second
				if delay := cur.GetNextAttemptTime().AsTime().Sub(cur.GetUpdateTime().AsTime()); delay > want || delay < want*8/10-time.Millisecond {
					t.Fatalf("ask %d: next in %s, want within [%s, %s]", cur.GetAttempts()+1, delay, want*8/10, want)
				}
				before := cur.GetAttempts()
				d.clock.Advance(cur.GetNextAttemptTime().AsTime().Sub(d.clock.Now()) + time.Millisecond)
				eventually(t, "next ask", func() bool { return d.get(t, gid).GetAttempts() > before })
			}
			got = d.get(t, gid)
			if !got.GetNeedsAttention() || got.GetState() != trying {
				t.Fatalf("past the horizon: %v attention %v", got.GetState(), got.GetNeedsAttention())
			}
			if over := d.clock.Now().Sub(got.GetDeadline().AsTime()); over < 30*time.Second {
				t.Fatalf("flagged %s after the deadline, before the 30s horizon", over)
			}
			if n := d.part.Attempts("Cancel", gid, "a") + d.part.Attempts("Confirm", gid, "a"); n != 0 {
				t.Fatalf("%d calls to the branches while undecided", n)
			}
			if v := d.checkBack(t, gid); v.GetVerdict() != tccv1.Verdict_VERDICT_PENDING {
				t.Fatalf("check-back while flagged: %v", v)
			}
			// The decider is back; an operator asks for it at once instead of
			// waiting for the next backoff time (the clock does not move).
			failed := int(d.get(t, gid).GetAttempts()) // each failed ask postponed it once
			d.down.Store(false)
			admin := adminv1.NewAdminServiceClient(grpctest.Dial(t, d.app.Addr()))
			if _, err := admin.RetryNow(ctxT(t), &adminv1.RetryNowRequest{Gid: gid}); err != nil {
				t.Fatalf("retry now: %v", err)
			}
			d.wantAll(t, gid, committed)
			if c := d.decidedBy(t, gid); c != adminv1.DecisionCause_DECISION_CAUSE_DECIDER {
				t.Fatalf("decided by %v, want DECIDER", c)
			}
			// Every ask is counted: the failed ones and the answer.
			metrics := httpGet(t, "http://"+d.app.HTTPAddr()+"/metrics")
			if want := fmt.Sprintf(`settle_decider_calls_total{result="error"} %d`, failed); !strings.Contains(metrics, want) {
				t.Fatalf("metrics lack %q:\n%s", want, grepLines(metrics, "settle_decider"))
			}
			if want := `settle_decider_calls_total{result="commit"} 1`; !strings.Contains(metrics, want) {
				t.Fatalf("metrics lack %q:\n%s", want, grepLines(metrics, "settle_decider"))
			}
		})
	}
}

// TestDeciderRefusedLocalChange: the business change fails (fn returns an
// error): nothing is committed locally, the transaction is rolled back and
// the branches are cancelled; a later ask of the decider answers ABORT.
func TestDeciderRefusedLocalChange(t *testing.T) {
	for _, b := range dbtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			d := setupDecider(t, b, false)
			const gid = "refused"
			tx := d.beginTried(t, gid)
			refusal := errors.New("order already cancelled by the customer")
			_, err := tx.CommitLocal(ctxT(t), d.db, func(db *gorm.DB) error {
				if err := placeOrder(gid)(db); err != nil {
					return err
				}
				return refusal
			})
			if !errors.Is(err, refusal) || !strings.Contains(err.Error(), "rolled back") {
				t.Fatalf("commit local: %v, want the refusal, rolled back", err)
			}
			d.wantAll(t, gid, aborted)
			if c := d.decidedBy(t, gid); c != adminv1.DecisionCause_DECISION_CAUSE_ROLLBACK {
				t.Fatalf("decided by %v, want ROLLBACK", c)
			}
			resp, err := d.decider.Decide(ctxT(t), &tccv1.DecideRequest{Gid: gid})
			if err != nil || resp.GetOutcome() != tccv1.Outcome_OUTCOME_ABORT {
				t.Fatalf("decider after the refusal: %v %v", resp.GetOutcome(), err)
			}
		})
	}
}

// TestDeciderBeginValidation: the decider target is validated and
// allow-listed like a participant target, and a repeated Begin must name
// the same decider.
func TestDeciderBeginValidation(t *testing.T) {
	e := setup(t, dbtest.NewSQLite(t), withoutRecovery)
	ctx := ctxT(t)
	for _, c := range []struct {
		decider string
		code    codes.Code
		msg     string
	}{
		{"127.0.0.1:notaport", codes.InvalidArgument, "decider"},
		{"http://user:pw@127.0.0.1:80/settle", codes.InvalidArgument, "decider URL must not carry credentials"},
		{"ftp://127.0.0.1:21", codes.InvalidArgument, "decider"},
		{strings.Repeat("a", 260) + ":1", codes.InvalidArgument, "decider is 262 bytes"},
		{"10.1.2.3:7600", codes.PermissionDenied, "decider"},
	} {
		_, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "v", Decider: c.decider})
		grpctest.WantCode(t, err, c.code, c.msg)
	}
	if _, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "v", Decider: "127.0.0.1:7600"}); err != nil {
		t.Fatal(err)
	}
	// Before its deadline an operator cannot have the decider asked (it
	// would abort a transaction that is still running).
	_, err := adminv1.NewAdminServiceClient(grpctest.Dial(t, e.app.Addr())).RetryNow(ctx, &adminv1.RetryNowRequest{Gid: "v"})
	grpctest.WantCode(t, err, codes.FailedPrecondition, "decider past its deadline")
	_, err = e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "v", Decider: "127.0.0.1:7601"})
	grpctest.WantCode(t, err, codes.AlreadyExists, "decider")
	r, err := e.coord.Begin(ctx, &tccv1.BeginRequest{Gid: "v", Decider: "127.0.0.1:7600"})
	if err != nil || r.GetTransaction().GetDecider() != "127.0.0.1:7600" {
		t.Fatalf("repeated begin: %v %v", r, err)
	}
}

// TestDeciderWrongURL: a decider URL that answers outside the contract (a
// 404: the decider is not served there) is flagged as needing attention at
// the first ask, not at the retry horizon; the transaction stays TRYING and
// no branch is called.
func TestDeciderWrongURL(t *testing.T) {
	d := setupDecider(t, dbtest.Backends()[0], true)
	const gid = "wrong-url"
	ctx := ctxT(t)
	tx, err := d.cl.Begin(ctx, client.BeginOptions{GID: gid, Timeout: 10 * time.Second, Decider: strings.TrimSuffix(d.target, "/settle") + "/nope"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Try(ctx, "a", d.part.Addr(), []byte("pay-a")); err != nil {
		t.Fatal(err)
	}
	d.pastDeadline(t, gid)
	eventually(t, "flagged", func() bool { return d.get(t, gid).GetNeedsAttention() })
	got := d.get(t, gid)
	if got.GetState() != trying || !strings.Contains(got.GetLastError(), "404") {
		t.Fatalf("state %v last error %q", got.GetState(), got.GetLastError())
	}
	if n := d.part.Attempts("Cancel", gid, "a") + d.part.Attempts("Confirm", gid, "a"); n != 0 {
		t.Fatalf("%d calls to the branch while undecided", n)
	}
}
