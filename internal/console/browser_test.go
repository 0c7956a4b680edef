package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/auth"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/internal/tcc"
	"github.com/settle-tcc/settle/internal/testparticipant"
)

// The browser tests drive Debian's chromium (or $CHROMIUM) headless
// through chromedp; nothing is downloaded. Without a browser they skip,
// except in CI (CI=true), where they fail.

func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no browser at %s (CI=true): install Debian's chromium or set CHROMIUM", path)
		}
		t.Skipf("no browser at %s: install Debian's chromium or set CHROMIUM", path)
	}
	return path
}

// browser starts a fresh headless chromium with exactly the flags below
// and a fresh profile, for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start %s: %v", chromium(t), err)
	}
	return bctx
}

// screenshots is the directory the screenshots go to: $SETTLE_SCREENSHOT_DIR
// or a new temporary one that outlives the test.
func screenshots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SETTLE_SCREENSHOT_DIR")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "settle-console-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

func shoot(dir, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	})
}

// waitFor polls a JavaScript condition until it is true, or fails with what
// the page shows.
func waitFor(what, js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))(ctx, t)
		if err != nil {
			page, _ := chromedp.Evaluate[string](`document.body.innerText`)(ctx, t)
			return fmt.Errorf("waiting for %s: %w; the page shows:\n%s", what, err, page)
		}
		return nil
	})
}

// text is a JavaScript expression: the text of the first element matching
// selector, or "".
func text(selector string) string {
	return fmt.Sprintf(`((document.querySelector(%q) || {}).textContent || "")`, selector)
}

// timelineRows is a JavaScript expression: how many timeline rows match
// the attribute selector.
func timelineRows(attrs string) string {
	return fmt.Sprintf(`document.querySelectorAll(%q).length`, "#timeline tbody tr"+attrs)
}

// xssProbe is a label value that would add an element to the page if the
// console ever wrote server strings as HTML.
const xssProbe = `<img id="xss" src="x"><b>bold</b>`

type coordinator struct {
	app     *app.App
	client  tccv1.CoordinatorServiceClient
	part    *testparticipant.Server
	healthy atomic.Bool
	base    string
}

// startCoordinator runs a coordinator with its HTTP listener on loopback,
// SQLite, and a participant that fails every Confirm of "order-stuck" until
// healthy is set. Two failed rounds flag a transaction; the backoff is
// 50ms after the first and then long, so only "Retry now" retries it soon.
func startCoordinator(t *testing.T, authCfg auth.Config) *coordinator {
	t.Helper()
	cfg := app.Config{Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", DB: dbtest.NewSQLite(t), Auth: authCfg}
	cfg.Recovery.Interval = 20 * time.Millisecond
	cfg.Coordinator.MaxAttempts = 2
	cfg.Coordinator.Backoff = tcc.Backoff{Initial: 50 * time.Millisecond, Multiplier: 2000, Max: time.Hour}
	a, err := app.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("start coordinator: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	c := &coordinator{app: a, client: tccv1.NewCoordinatorServiceClient(grpctest.Dial(t, a.Addr())),
		part: testparticipant.Start(t), base: "http://" + a.HTTPAddr()}
	c.part.SetBehaviour(func(_ context.Context, method, gid, _ string) error {
		if method == "Confirm" && gid == "order-stuck" && !c.healthy.Load() {
			return testparticipant.Unavailable("ledger")
		}
		return nil
	})
	return c
}

// begin starts gid with two branches and the caller's token, and commits
// or rolls it back.
func (c *coordinator) begin(t *testing.T, ctx context.Context, gid string, commit bool) {
	t.Helper()
	_, err := c.client.Begin(ctx, &tccv1.BeginRequest{Gid: gid, Timeout: durationpb.New(time.Minute),
		Labels: map[string]string{"shop": "eu-1", "kind": "order", "note": xssProbe},
		Branches: []*tccv1.BranchRegistration{
			{BranchId: "payment", Participant: c.part.Addr(), Payload: []byte(`{"amount":1250,"currency":"EUR"}`)},
			{BranchId: "stock", Participant: c.part.Addr(), Payload: []byte(`{"sku":"A-7","qty":2}`)},
		}})
	if err != nil {
		t.Fatalf("begin %s: %v", gid, err)
	}
	if commit {
		_, err = c.client.Commit(ctx, &tccv1.CommitRequest{Gid: gid})
	} else {
		_, err = c.client.Rollback(ctx, &tccv1.RollbackRequest{Gid: gid, Reason: "out of stock"})
	}
	if err != nil {
		t.Fatalf("decide %s: %v", gid, err)
	}
}

// eventually polls cond (on the Go side) for up to 20s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *coordinator) state(t *testing.T, gid string) *tcc.Transaction {
	t.Helper()
	tx, err := c.app.Coordinator().Get(context.Background(), gid)
	if err != nil {
		t.Fatalf("get %s: %v", gid, err)
	}
	return tx
}

// withCommitted begins a committed, an aborted and a stuck transaction
// and waits until they are final, final and flagged.
func (c *coordinator) withTransactions(t *testing.T, ctx context.Context) {
	t.Helper()
	c.begin(t, ctx, "order-ok", true)
	c.begin(t, ctx, "order-cancelled", false)
	c.begin(t, ctx, "order-stuck", true)
	eventually(t, "order-ok committed", func() bool { return c.state(t, "order-ok").State == tcc.StateCommitted })
	eventually(t, "order-cancelled aborted", func() bool { return c.state(t, "order-cancelled").State == tcc.StateAborted })
	eventually(t, "order-stuck flagged", func() bool { return c.state(t, "order-stuck").NeedsAttention })
}

// TestConsoleInBrowser: the operator's path through the console in a real
// browser: the overview's counts and chart, the list filtered to the
// transactions needing attention, the stuck transaction's failed attempts
// in its timeline, then Retry now once the participant is healthy, and the
// successful attempt and the final state appearing on their own.
func TestConsoleInBrowser(t *testing.T) {
	bctx := browser(t)
	dir := screenshots(t)
	c := startCoordinator(t, auth.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.withTransactions(t, ctx)

	err := chromedp.Do(bctx,
		chromedp.Navigate(c.base+"/console"), // redirected to /console/
		waitFor("the overview's counts", text("#ov-count-COMMITTED .value")+` === "1" && `+
			text("#ov-count-ABORTED .value")+` === "1" && `+text("#ov-count-COMMITTING .value")+` === "1" && `+
			text("#ov-attention .value")+` === "1"`),
		waitFor("the chart's bars (3 decisions, failed calls)", `document.querySelectorAll("#ov-chart rect").length >= 2 && `+
			`document.querySelector(".legend").textContent.includes("decisions (3 in the hour)")`),
		waitFor("the oldest unfinished age", text("#ov-oldest-unfinished .value")+` !== "none"`),
		shoot(dir, "1-overview"),

		chromedp.Click(chromedp.CSS("#nav-list")),
		waitFor("the unfiltered list", `document.querySelectorAll("#tx-list tbody tr[data-gid]").length === 3`),
		chromedp.Click(chromedp.CSS("#f-attention")),
		chromedp.Click(chromedp.CSS("#apply-filters")),
		waitFor("the list filtered to needs attention", `location.hash.includes("needs_attention=true") && `+
			`document.querySelectorAll("#tx-list tbody tr[data-gid]").length === 1 && `+
			`document.querySelector("#tx-list tbody tr").dataset.gid === "order-stuck" && `+
			text(`#tx-list tbody tr[data-gid="order-stuck"]`)+`.includes("needs attention")`),
		shoot(dir, "2-list-needs-attention"),

		chromedp.Click(chromedp.CSS(`#tx-list a[href="#/tx/order-stuck"]`)),
		waitFor("the failed attempts in the timeline", timelineRows(`[data-kind="ATTEMPT"][data-result="UNKNOWN"]`)+` >= 4 && `+
			timelineRows(`[data-kind="NEEDS_ATTENTION"]`)+` === 1 && `+text("#timeline")+`.includes("ledger unavailable") && `+
			text("#tx-state")+` === "COMMITTING" && `+text("#tx-branches")+`.includes("payment") && `+
			text("#tx-decider")+` === "none" && `+
			text("#tx-labels")+fmt.Sprintf(`.includes(%q) && document.getElementById("xss") === null`, xssProbe)),
		shoot(dir, "3-transaction-before"),
	)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing retries it on its own for the next hour.
	if tx := c.state(t, "order-stuck"); tx.State != tcc.StateCommitting || tx.NextAttemptAt.Before(time.Now().Add(time.Minute)) {
		t.Fatalf("order-stuck before Retry now: %s, next attempt %v", tx.State, tx.NextAttemptAt)
	}
	c.healthy.Store(true)
	err = chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS("#retry")),
		waitFor("the retry, the successful attempts and the final state", timelineRows(`[data-kind="RETRY_NOW"]`)+` === 1 && `+
			timelineRows(`[data-kind="ATTEMPT"][data-result="SUCCESS"]`)+` === 2 && `+
			timelineRows(`[data-kind="FINISHED"]`)+` === 1 && `+text("#tx-state")+` === "COMMITTED" && `+
			text(`#timeline tr[data-kind="RETRY_NOW"]`)+`.includes("by an unauthenticated caller") && `+
			text("#tx-refresh")+`.includes("Final")`),
		shoot(dir, "4-transaction-after"),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"1-overview", "2-list-needs-attention", "3-transaction-before", "4-transaction-after"} {
		if fi, err := os.Stat(filepath.Join(dir, name+".png")); err != nil || fi.Size() < 1000 {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
}

const (
	operatorToken = "console-operator-0123456789"
	viewerToken   = "console-viewer-0123456789ab"
)

// TestConsoleAuth: with a token file the console without a token shows the
// 401 and what to do; with a viewer token the pages load but Retry now
// shows the server's 403; with an operator token a branch is resolved
// after the confirmation step, and the resolution appears in the timeline
// with the operator's name. The token never appears in the URL.
func TestConsoleAuth(t *testing.T) {
	bctx := browser(t)
	dir := screenshots(t)
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	lines := "console-initiator-0123456789,shop,initiator\n" + operatorToken + ",alice,operator\n" + viewerToken + ",victor,viewer\n"
	if err := os.WriteFile(tokens, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCoordinator(t, auth.Config{TokenFile: tokens})
	cc, err := grpc.NewClient(c.app.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(client.BearerToken("console-initiator-0123456789")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	c.client = tccv1.NewCoordinatorServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.begin(t, ctx, "order-stuck", true)
	eventually(t, "order-stuck flagged", func() bool { return c.state(t, "order-stuck").NeedsAttention })

	useToken := func(tok string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.SetValue(chromedp.CSS("#token"), tok),
			chromedp.Click(chromedp.CSS("#use-token")),
		)
	}
	err = chromedp.Do(bctx,
		chromedp.Navigate(c.base+"/console/"),
		waitFor("the 401", `!document.getElementById("error").hidden && `+text("#error")+`.includes("401 UNAUTHENTICATED") && `+
			text("#error")+`.includes("Enter a bearer token")`),
		shoot(dir, "5-no-token"),
		useToken(viewerToken),
		waitFor("the overview as a viewer", `document.getElementById("error").hidden && `+text("#ov-count-COMMITTING .value")+` === "1"`),
		chromedp.Navigate(c.base+"/console/#/tx/order-stuck"),
		waitFor("the transaction as a viewer", text("#tx-state")+` === "COMMITTING"`),
		chromedp.Click(chromedp.CSS("#retry")),
		waitFor("the 403", `!document.getElementById("error").hidden && `+text("#error")+`.includes("403 PERMISSION_DENIED") && `+
			text("#error")+`.includes("victor (viewer) may not call /settle.admin.v1.AdminService/RetryNow")`),
		shoot(dir, "6-viewer-retry-refused"),

		useToken(operatorToken),
		waitFor("the transaction as an operator", `document.getElementById("error").hidden && `+text("#tx-state")+` === "COMMITTING"`),
		chromedp.SetValue(chromedp.CSS("#resolve-branch"), "payment"),
		chromedp.SetValue(chromedp.CSS("#resolve-state"), "BRANCH_STATE_CONFIRMED"),
		// Without a reason nothing is sent.
		chromedp.Click(chromedp.CSS("#resolve-start")),
		waitFor("the reason required", text("#error")+`.includes("A reason is required")`),
		chromedp.SendKeys(chromedp.CSS("#resolve-reason"), "ledger fixed by hand, ticket OPS-7"),
		chromedp.Click(chromedp.CSS("#resolve-start")),
		waitFor("the confirmation step", `!document.getElementById("resolve-confirm").hidden && `+
			text("#resolve-confirm")+`.includes("cannot be undone")`),
		shoot(dir, "7-resolve-confirm"),
		chromedp.Click(chromedp.CSS("#resolve-yes")),
		waitFor("the resolution in the timeline", timelineRows(`[data-kind="RESOLVED"]`)+` === 1 && `+
			text(`#timeline tr[data-kind="RESOLVED"]`)+`.includes("by alice (operator)") && `+
			text(`#timeline tr[data-kind="RESOLVED"]`)+`.includes("ledger fixed by hand")`),
	)
	if err != nil {
		t.Fatal(err)
	}
	url, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil || strings.Contains(url, "0123456789") {
		t.Fatalf("the location %s (%v): the token must never be in it", url, err)
	}
	got := c.state(t, "order-stuck")
	for _, b := range got.Branches {
		if b.BranchID == "payment" && (b.State != tcc.BranchConfirmed || !strings.Contains(b.Resolution, "alice (operator)")) {
			t.Fatalf("payment after the resolution: %+v", b)
		}
	}
}
