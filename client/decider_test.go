package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/httpparticipant"
)

// initiatorDB returns a fresh database of backend b with the decision
// table.
func initiatorDB(t *testing.T, b dbtest.Backend) *gorm.DB {
	t.Helper()
	db := dbtest.Open(t, b.New(t))
	if err := client.EnsureDecisionTable(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func decisionRow(t *testing.T, db *gorm.DB, gid string) string {
	t.Helper()
	var out []string
	if err := db.Raw(`SELECT outcome FROM settle_decision WHERE gid = ?`, gid).Scan(&out).Error; err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		return ""
	}
	return out[0]
}

// TestDeciderAnswers: the first question about an unknown gid inserts
// (gid, abort) and answers ABORT, and so does every later one; a gid
// committed locally is answered COMMIT. The answer never changes.
func TestDeciderAnswers(t *testing.T) {
	for _, b := range dbtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := initiatorDB(t, b)
			d := client.NewDecider(db)
			ctx := context.Background()
			for i := 0; i < 2; i++ {
				r, err := d.Decide(ctx, &tccv1.DecideRequest{Gid: "never-committed"})
				if err != nil || r.GetOutcome() != tccv1.Outcome_OUTCOME_ABORT {
					t.Fatalf("ask %d: %v %v", i, r.GetOutcome(), err)
				}
			}
			if got := decisionRow(t, db, "never-committed"); got != client.OutcomeAbort {
				t.Fatalf("row %q", got)
			}
			if err := db.Exec(`INSERT INTO settle_decision (gid, outcome, created_us) VALUES ('committed', 'commit', 1)`).Error; err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				r, err := d.Decide(ctx, &tccv1.DecideRequest{Gid: "committed"})
				if err != nil || r.GetOutcome() != tccv1.Outcome_OUTCOME_COMMIT {
					t.Fatalf("ask %d: %v %v", i, r.GetOutcome(), err)
				}
			}
			_, err := d.Decide(ctx, &tccv1.DecideRequest{Gid: "bad gid"})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("malformed gid: %v", err)
			}
		})
	}
}

// TestDeciderHTTP: the HTTP contract, through the coordinator's own HTTP
// decider client and by hand.
func TestDeciderHTTP(t *testing.T) {
	db := initiatorDB(t, dbtest.Backends()[0])
	if err := db.Exec(`INSERT INTO settle_decision (gid, outcome, created_us) VALUES ('paid', 'commit', 1)`).Error; err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/settle/", client.NewDecider(db))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dc := httpparticipant.NewDecider(srv.Client(), srv.URL+"/settle/")
	ctx := context.Background()
	for gid, want := range map[string]tccv1.Outcome{"paid": tccv1.Outcome_OUTCOME_COMMIT, "unpaid": tccv1.Outcome_OUTCOME_ABORT} {
		r, err := dc.Decide(ctx, &tccv1.DecideRequest{Gid: gid})
		if err != nil || r.GetOutcome() != want {
			t.Fatalf("%s: %v %v, want %v", gid, r.GetOutcome(), err, want)
		}
	}
	post := func(method, path, body string, header ...string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		method, path, body string
		header             []string
		status             int
		contains           string
	}{
		{"POST", "/settle/decide", `{"gid":"paid"}`, nil, 200, `{"outcome":"COMMIT"}`},
		{"POST", "/settle/decide", `{"gid":"unpaid"}`, []string{"Settle-Gid", "unpaid"}, 200, `{"outcome":"ABORT"}`},
		{"POST", "/settle/decide", `{"gid":"bad gid"}`, nil, 400, "INVALID_ARGUMENT"},
		{"POST", "/settle/decide", `{"gid":`, nil, 400, "not a decide request"},
		{"POST", "/settle/decide", `{"gid":"paid","extra":1}`, nil, 400, "not a decide request"},
		{"POST", "/settle/decide", `{"gid":"paid"}`, []string{"Settle-Gid", "other"}, 400, "Settle-Gid"},
		{"GET", "/settle/decide", ``, nil, 405, "POST"},
		{"POST", "/settle/try", `{"gid":"paid"}`, nil, 404, "decide"},
	} {
		st, body := post(c.method, c.path, c.body, c.header...)
		if st != c.status || !strings.Contains(body, c.contains) {
			t.Errorf("%s %s %s: %d %s, want %d containing %q", c.method, c.path, c.body, st, body, c.status, c.contains)
		}
	}
	// An answer outside the contract is an unknown outcome, flagged.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"outcome":"MAYBE"}`) }))
	defer bad.Close()
	_, err := httpparticipant.NewDecider(bad.Client(), bad.URL).Decide(ctx, &tccv1.DecideRequest{Gid: "g"})
	var ae *httpparticipant.AnswerError
	if !errors.As(err, &ae) || !ae.Unexpected || !strings.Contains(err.Error(), "MAYBE") {
		t.Fatalf("outcome MAYBE: %v", err)
	}
}

// TestCommitLocalRefusesWithoutDecider: nothing is done, not even a
// rollback.
func TestCommitLocalRefusesWithoutDecider(t *testing.T) {
	e := setup(t)
	db := initiatorDB(t, dbtest.Backends()[0])
	tx, err := e.client.Begin(context.Background(), client.BeginOptions{GID: "g"})
	if err != nil {
		t.Fatal(err)
	}
	called := false
	_, err = tx.CommitLocal(context.Background(), db, func(*gorm.DB) error { called = true; return nil })
	if !errors.Is(err, client.ErrNoDecider) || called {
		t.Fatalf("commit local without a decider: %v (fn called: %v)", err, called)
	}
	equalEvents(t, e.rec.list(), []string{"begin g"})
}

// TestCommitLocalNeedsEveryTry: a branch registered with Begin and never
// tried, or whose last Try failed, rolls back without running fn; a Try
// that failed and then succeeded counts as tried.
func TestCommitLocalNeedsEveryTry(t *testing.T) {
	e := setup(t, client.WithDecider("127.0.0.1:7600"))
	db := initiatorDB(t, dbtest.Backends()[0])
	ctx := context.Background()
	tx, err := e.client.Begin(ctx, client.BeginOptions{GID: "g", Branches: []client.Branch{{ID: "a", Participant: e.partAddr}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Try(ctx, "b", e.partAddr, nil); err != nil {
		t.Fatal(err)
	}
	called := false
	_, err = tx.CommitLocal(ctx, db, func(*gorm.DB) error { called = true; return nil })
	if !errors.Is(err, client.ErrNotTried) || !strings.Contains(err.Error(), "a (never tried)") || called {
		t.Fatalf("commit local with a branch never tried: %v (fn called: %v)", err, called)
	}
	// The abort is made durable before the rollback: no later local
	// commit of g can succeed.
	if got := decisionRow(t, db, "g"); got != client.OutcomeAbort {
		t.Fatalf("decision row %q, want abort", got)
	}
	// A failed Try, then a retry that succeeds.
	tx2, err := e.client.Begin(ctx, client.BeginOptions{GID: "g2"})
	if err != nil {
		t.Fatal(err)
	}
	e.part.set(func(p *fakeParticipant) { p.tryErr = status.Error(codes.Unavailable, "blip") })
	if err := tx2.Try(ctx, "a", e.partAddr, nil); err == nil {
		t.Fatal("try succeeded against a failing participant")
	}
	e.part.set(func(p *fakeParticipant) { p.tryErr = nil })
	if err := tx2.Try(ctx, "a", e.partAddr, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.CommitLocal(ctx, db, func(*gorm.DB) error { return nil }); err != nil {
		t.Fatalf("commit local after a successful retry: %v", err)
	}
	if got := decisionRow(t, db, "g2"); got != client.OutcomeCommit {
		t.Fatalf("decision row %q", got)
	}
	list := e.rec.list()
	if last := list[len(list)-1]; last != "commit g2 wait=false" {
		t.Fatalf("last call %q, want the commit of g2 (events %v)", last, list)
	}
	if !strings.Contains(strings.Join(list, "\n"), "rollback g wait=false") {
		t.Fatalf("g not rolled back: %v", list)
	}
}

// TestCommitLocalPanic: a panicking business change rolls the local and
// the global transaction back and the panic goes on.
func TestCommitLocalPanic(t *testing.T) {
	e := setup(t, client.WithDecider("127.0.0.1:7600"))
	db := initiatorDB(t, dbtest.Backends()[0])
	if err := db.Exec(`CREATE TABLE orders (id VARCHAR(64) PRIMARY KEY)`).Error; err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tx, err := e.client.Begin(ctx, client.BeginOptions{GID: "g"})
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Fatalf("recovered %v, want the panic", v)
			}
		}()
		_, _ = tx.CommitLocal(ctx, db, func(db *gorm.DB) error {
			if err := db.Exec(`INSERT INTO orders (id) VALUES ('g')`).Error; err != nil {
				return err
			}
			panic("boom")
		})
	}()
	var n int64
	if err := db.Raw(`SELECT COUNT(*) FROM orders`).Scan(&n).Error; err != nil || n != 0 {
		t.Fatalf("orders after the panic: %d %v", n, err)
	}
	if got := decisionRow(t, db, "g"); got != client.OutcomeAbort {
		t.Fatalf("decision row %q, want abort", got)
	}
	if r := e.coord.reason(0); !strings.Contains(r, "panic") {
		t.Fatalf("rollback reason %q", r)
	}
}

// TestCommitLocalRacesDecider: many local commits, each racing a decider
// question for the same gid started at a random moment around it. Whoever
// wins the key decides, and everyone agrees: the decider's answer, the
// decision row, the business row and CommitLocal's result.
func TestCommitLocalRacesDecider(t *testing.T) {
	for _, b := range dbtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			e := setup(t, client.WithDecider("127.0.0.1:7600"))
			db := initiatorDB(t, b)
			if err := db.Exec(`CREATE TABLE orders (id VARCHAR(64) NOT NULL PRIMARY KEY)`).Error; err != nil {
				t.Fatal(err)
			}
			d := client.NewDecider(db)
			ctx := context.Background()
			const n = 40
			commits, aborts := 0, 0
			for i := 0; i < n; i++ {
				gid := fmt.Sprintf("race-%d", i)
				tx, err := e.client.Begin(ctx, client.BeginOptions{GID: gid})
				if err != nil {
					t.Fatal(err)
				}
				start := make(chan struct{})
				var wg sync.WaitGroup
				var commitErr, askErr error
				var answer tccv1.Outcome
				wg.Add(2)
				go func() {
					defer wg.Done()
					<-start
					_, commitErr = tx.CommitLocal(ctx, db, func(db *gorm.DB) error {
						// Spread the local transaction's length, so that the
						// question lands before, inside and after it.
						time.Sleep(time.Duration(i%4) * time.Millisecond)
						return db.Exec(`INSERT INTO orders (id) VALUES (?)`, gid).Error
					})
				}()
				go func() {
					defer wg.Done()
					<-start
					time.Sleep(time.Duration(i%5) * time.Millisecond)
					r, err := d.Decide(ctx, &tccv1.DecideRequest{Gid: gid})
					answer, askErr = r.GetOutcome(), err
				}()
				close(start)
				wg.Wait()
				if askErr != nil {
					t.Fatalf("%s: decider: %v", gid, askErr)
				}
				var orders int64
				if err := db.Raw(`SELECT COUNT(*) FROM orders WHERE id = ?`, gid).Scan(&orders).Error; err != nil {
					t.Fatal(err)
				}
				row := decisionRow(t, db, gid)
				switch answer {
				case tccv1.Outcome_OUTCOME_COMMIT:
					commits++
					if commitErr != nil || orders != 1 || row != client.OutcomeCommit {
						t.Fatalf("%s: decider COMMIT but commit local %v, %d orders, row %q", gid, commitErr, orders, row)
					}
				case tccv1.Outcome_OUTCOME_ABORT:
					aborts++
					if !errors.Is(commitErr, client.ErrDecidedAbort) || orders != 0 || row != client.OutcomeAbort {
						t.Fatalf("%s: decider ABORT but commit local %v, %d orders, row %q", gid, commitErr, orders, row)
					}
				default:
					t.Fatalf("%s: answer %v", gid, answer)
				}
			}
			t.Logf("%d races: %d won by the local commit, %d by the decider", n, commits, aborts)
		})
	}
}

// TestCommitLocalRepeat: after ErrCommittedLocally (the Commit failed), a
// repeated CommitLocal does not run the business change again and only
// repeats the Commit; after an abort, a repeat never commits.
func TestCommitLocalRepeat(t *testing.T) {
	e := setup(t, client.WithDecider("127.0.0.1:7600"))
	db := initiatorDB(t, dbtest.Backends()[0])
	ctx := context.Background()
	tx, err := e.client.Begin(ctx, client.BeginOptions{GID: "g"})
	if err != nil {
		t.Fatal(err)
	}
	e.coord.set(func(f *fakeCoordinator) { f.commitErr = status.Error(codes.Unavailable, "down") })
	runs := 0
	fn := func(*gorm.DB) error { runs++; return nil }
	if _, err := tx.CommitLocal(ctx, db, fn); !errors.Is(err, client.ErrCommittedLocally) {
		t.Fatalf("first commit local: %v, want ErrCommittedLocally", err)
	}
	e.coord.set(func(f *fakeCoordinator) { f.commitErr = nil })
	txn, err := tx.CommitLocal(ctx, db, fn)
	if err != nil || txn.GetState() != tccv1.TransactionState_TRANSACTION_STATE_COMMITTING || runs != 1 {
		t.Fatalf("repeat: %v %v, business change run %d times", txn.GetState(), err, runs)
	}
	if strings.Contains(strings.Join(e.rec.list(), "\n"), "rollback") {
		t.Fatalf("rolled back: %v", e.rec.list())
	}

	tx2, err := e.client.Begin(ctx, client.BeginOptions{GID: "g2"})
	if err != nil {
		t.Fatal(err)
	}
	refusal := errors.New("no")
	if _, err := tx2.CommitLocal(ctx, db, func(*gorm.DB) error { return refusal }); !errors.Is(err, refusal) {
		t.Fatalf("refused: %v", err)
	}
	if _, err := tx2.CommitLocal(ctx, db, fn); !errors.Is(err, client.ErrDecidedAbort) || runs != 1 {
		t.Fatalf("repeat after the abort: %v (business change run %d times), want ErrDecidedAbort without running it", err, runs)
	}
}
