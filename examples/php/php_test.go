// Package php_test runs the PHP participant and initiator of examples/php
// against the real coordinator binary, with the Go demo participant as the
// second branch of each order.
package php_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // database/sql driver "sqlite"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/demo"
	"github.com/settle-tcc/settle/internal/faulttest"
	"github.com/settle-tcc/settle/internal/httpparticipant"
)

// requirePHP returns the php binary, or skips the test when PHP (or its
// PDO SQLite driver) is absent; with CI=true it fails instead.
func requirePHP(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s, and CI=true: .ci/run must install php-cli and php-sqlite3", what)
		}
		t.Skipf("%s: skipping the PHP participant test (Debian: apt-get install php-cli php-sqlite3)", what)
	}
	php, err := exec.LookPath("php")
	if err != nil {
		missing("php is not installed")
	}
	mods, err := exec.Command(php, "-m").Output()
	if err != nil || !bytes.Contains(mods, []byte("pdo_sqlite")) {
		missing("php has no pdo_sqlite module")
	}
	return php
}

// phpServer is `php -S addr router.php` in its own process group (the
// built-in server's workers are its children), restartable.
type phpServer struct {
	php, addr, dir string
	env            []string
	cmd            *exec.Cmd
	log            *os.File
}

func (s *phpServer) start() error {
	cmd := exec.Command(s.php, "-S", s.addr, "router.php")
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start php -S: %w", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + s.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("php -S on %s not healthy after 15s: %v", s.addr, err)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func (s *phpServer) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// order kinds, by gid number modulo 10.
const (
	kindCancelFirst = 0 // registered, rolled back before any Try; then a late Try
	kindAbandoned   = 1 // both tried, never decided: the deadline aborts it
	kindDuplicated  = 2 // every Try twice, committed, then a repeated Confirm and a stray Cancel
	kindRollback    = 3 // both tried, rolled back by the initiator
	kindPHP         = 4 // placed by initiator.php over the HTTP API (two PHP branches)
)

// TestPHPParticipant: a few hundred orders, each a payment at the PHP
// participant and a stock reservation at the Go demo participant, with
// refusals (poor accounts, stock running out), duplicated calls, Cancels
// before their Try, abandoned orders left to the deadline and check-back,
// a coordinator kill and a PHP participant restart. Afterwards every
// order is all-or-nothing across both participants' own tables, and money
// and stock are conserved.
func TestPHPParticipant(t *testing.T) {
	php := requirePHP(t)
	if testing.Short() {
		t.Skip("-short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	started := time.Now()
	bins, err := faulttest.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bins.Remove()
	built := time.Since(started)
	dir := t.TempDir()
	src, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	addr := func() string {
		a, err := faulttest.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	coordAddr, httpAddr, phpAddr, demoAddr := addr(), addr(), addr(), addr()
	// Authentication on: the initiators and the participants' check-back
	// loops present bearer tokens of their roles.
	initiatorToken, participantToken := randomToken(t), randomToken(t)
	tokens := filepath.Join(dir, "tokens.csv")
	participantTokenFile := filepath.Join(dir, "participant.token")
	for f, content := range map[string]string{
		tokens:               "# token,name,role\n" + initiatorToken + ",orders,initiator\n" + participantToken + ",payments,participant\n",
		participantTokenFile: participantToken + "\n",
	} {
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	coordHTTP := "http://" + httpAddr
	phpURL := "http://" + phpAddr + "/tcc"

	coord := faulttest.NewProc("coordinator", coordAddr, bins.Coordinator,
		"-listen", coordAddr, "-http-listen", httpAddr, "-db", "sqlite:"+filepath.Join(dir, "coordinator.db"),
		"-retry-initial", "200ms", "-retry-max", "2s", "-recovery-interval", "100ms", "-call-timeout", "2s", "-lease-ttl", "3s",
		"-auth-token-file", tokens)
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	defer coord.Kill()

	phpDB := filepath.Join(dir, "php-participant.db")
	phpEnv := []string{"PHP_PARTICIPANT_DB=" + phpDB, "PHP_PARTICIPANT_CHECK_AFTER_MS=1500", "PHP_CLI_SERVER_WORKERS=4"}
	users := map[string]int64{"alice": 200000, "bob": 50000, "carol": 20000, "dave": 3000, "erin": 800}
	seed := []string{"accounts.php", "seed"}
	var moneyTotal int64
	for u, b := range users {
		seed = append(seed, fmt.Sprintf("%s=%d", u, b))
		moneyTotal += b
	}
	runPHPEnv := func(env []string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, php, args...)
		cmd.Dir = src
		cmd.Env = append(append(os.Environ(), phpEnv...), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = fmt.Errorf("php %s: %w: %s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return out, err
	}
	runPHP := func(args ...string) ([]byte, error) { return runPHPEnv(nil, args...) }
	if _, err := runPHP(seed...); err != nil {
		t.Fatal(err)
	}
	phpLog, err := os.Create(filepath.Join(dir, "php.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer phpLog.Close()
	phpSrv := &phpServer{php: php, addr: phpAddr, dir: src, env: phpEnv, log: phpLog}
	if err := phpSrv.start(); err != nil {
		t.Fatal(err)
	}
	defer phpSrv.kill()

	demoDB := filepath.Join(dir, "demo.db")
	demoProc := faulttest.NewProc("participant-demo", demoAddr, bins.Demo, "serve", "-listen", demoAddr, "-db", "sqlite:"+demoDB,
		"-resources", "inventory", "-coordinator", coordAddr, "-checkback-after", "1500ms", "-checkback-interval", "300ms",
		"-token-file", participantTokenFile)
	if err := demoProc.Start(); err != nil {
		t.Fatal(err)
	}
	defer demoProc.Kill()
	ddb, err := sql.Open("sqlite", demoDB+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	// Enough pens for most orders, few enough that the stock runs out.
	if _, err := ddb.ExecContext(ctx, "UPDATE demo_stock SET stock = 200 WHERE sku = 'pen'"); err != nil {
		t.Fatal(err)
	}
	stockTotal := map[string]int64{}
	rows, err := ddb.QueryContext(ctx, "SELECT sku, stock + sold FROM demo_stock")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var sku string
		var n int64
		if err := rows.Scan(&sku, &n); err != nil {
			t.Fatal(err)
		}
		stockTotal[sku] = n
	}
	rows.Close()

	// The check-back loop of the PHP participant, run by the test.
	stopCheckback := make(chan struct{})
	var checkbackPasses, checkbackApplied, checkbackPending atomic.Int64
	var cbWG sync.WaitGroup
	cbWG.Add(1)
	go func() {
		defer cbWG.Done()
		for {
			select {
			case <-stopCheckback:
				return
			case <-time.After(300 * time.Millisecond):
			}
			cmd := exec.CommandContext(ctx, php, "checkback.php", "--coordinator", coordHTTP, "--token-file", participantTokenFile)
			cmd.Dir = src
			cmd.Env = append(os.Environ(), phpEnv...)
			out, _ := cmd.CombinedOutput()
			checkbackPasses.Add(1)
			checkbackApplied.Add(int64(bytes.Count(out, []byte(": confirm: "))) + int64(bytes.Count(out, []byte(": cancel: "))))
			checkbackPending.Add(int64(bytes.Count(out, []byte(": pending: VERDICT_PENDING retry after "))))
		}
	}()
	defer func() { close(stopCheckback); cbWG.Wait() }()

	// Reconnect quickly after the coordinator's restart (the default
	// backoff grows to seconds).
	c, err := client.New(coordAddr, client.WithToken(initiatorToken), client.WithDialOptions(grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 300 * time.Millisecond}, MinConnectTimeout: time.Second})))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	direct := httpparticipant.New(httpparticipant.NewHTTPClient(nil, 8, 8, time.Minute), phpURL)

	const orders = 300
	userNames := []string{"alice", "bob", "carol", "dave", "erin"}
	type figures struct {
		committed, rolledBack, refused, errored, lateTryRefused, lateTryPassed, lateTryUnanswered, dupOK, strayRefused, php atomic.Int64
	}
	var fig figures
	var done atomic.Int64
	var errMu sync.Mutex
	errSeen := map[string]int{}
	failed := func(stage string, err error) {
		fig.errored.Add(1)
		errMu.Lock()
		defer errMu.Unlock()
		errSeen[stage+": "+status.Code(err).String()]++
		if errSeen[stage+": "+status.Code(err).String()] == 1 {
			t.Logf("first %s error: %v", stage, err)
		}
	}
	place := func(i int) {
		gid := fmt.Sprintf("order-%03d", i)
		user := userNames[i%len(userNames)]
		amount := int64(100 + (i*37)%900)
		sku, qty := "pen", int64(1+i%2)
		if i%7 == 0 {
			sku, qty = "book", 1
		}
		pay := []byte(fmt.Sprintf(`{"user":%q,"amount":%d}`, user, amount))
		stock := demo.InventoryPayload(sku, qty)
		octx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		switch i % 10 {
		case kindPHP:
			fee := fmt.Sprintf(`{"user":%q,"amount":%d}`, user, 10+i%50)
			out, err := runPHPEnv([]string{"SETTLE_TOKEN=" + initiatorToken}, "initiator.php", "--coordinator", coordHTTP, "--gid", gid, "--timeout", "5s", "--repeat-try",
				"--branch", "pay|"+phpURL+"|"+string(pay), "--branch", "fee|"+phpURL+"|"+fee)
			fig.php.Add(1)
			var res struct{ Outcome, Refused string }
			if err != nil || json.Unmarshal(out, &res) != nil {
				failed("initiator.php", fmt.Errorf("%v: %s", err, out))
				return
			}
			if res.Outcome == "commit" {
				fig.committed.Add(1)
			} else {
				fig.rolledBack.Add(1)
				fig.refused.Add(1)
			}
			return
		case kindCancelFirst:
			tx, err := c.Begin(octx, client.BeginOptions{GID: gid, Timeout: 5 * time.Second, Branches: []client.Branch{
				{ID: "pay", Participant: phpURL, Payload: pay}, {ID: "stock", Participant: demoAddr, Payload: stock}}})
			if err != nil {
				failed("begin", err)
				return
			}
			rolled, err := tx.Rollback(octx, "changed my mind", true)
			if err != nil {
				failed("rollback", err)
				return
			}
			payCancelled := false // the PHP participant acknowledged the Cancel
			for _, b := range rolled.GetBranches() {
				payCancelled = payCancelled || (b.GetBranchId() == "pay" && b.GetState() == tccv1.BranchState_BRANCH_STATE_CANCELLED)
			}
			fig.rolledBack.Add(1)
			// The late Try: the null compensation must refuse it.
			_, err = direct.Try(octx, &tccv1.TryRequest{Gid: gid, BranchId: "pay", Payload: pay})
			switch status.Code(err) {
			case codes.FailedPrecondition:
				fig.lateTryRefused.Add(1)
			case codes.OK:
				if payCancelled {
					t.Errorf("%s: a Try after the acknowledged Cancel (a null compensation) was accepted: anti-hanging is broken", gid)
				}
				// The Cancel had not reached PHP (it was restarting): the
				// Try got through, and the retried Cancel or the
				// check-back must release it (checked below).
				fig.lateTryPassed.Add(1)
			default:
				fig.lateTryUnanswered.Add(1)
			}
			return
		}
		// Begin is idempotent by gid: an initiator retries it while the
		// coordinator restarts.
		tx, err := c.Begin(octx, client.BeginOptions{GID: gid, Timeout: 5 * time.Second})
		for n := 0; n < 30 && status.Code(err) == codes.Unavailable; n++ {
			time.Sleep(100 * time.Millisecond)
			tx, err = c.Begin(octx, client.BeginOptions{GID: gid, Timeout: 5 * time.Second})
		}
		if err != nil {
			failed("begin", err)
			return
		}
		tries := 1
		if i%10 == kindDuplicated {
			tries = 2
		}
		var tryErr error
		for n := 0; n < tries && tryErr == nil; n++ {
			if tryErr = tx.Try(octx, "pay", phpURL, pay); tryErr == nil {
				tryErr = tx.Try(octx, "stock", demoAddr, stock)
			}
		}
		if i%10 == kindAbandoned {
			return // the initiator "crashed": the deadline decides
		}
		if tryErr != nil || i%10 == kindRollback {
			if status.Code(tryErr) == codes.FailedPrecondition {
				fig.refused.Add(1)
			}
			if tryErr != nil && status.Code(tryErr) != codes.FailedPrecondition {
				failed("try", tryErr)
			}
			if _, err := tx.Rollback(octx, "refused", false); err != nil {
				failed("rollback", err)
				return
			}
			fig.rolledBack.Add(1)
			return
		}
		if _, err := tx.Commit(octx, i%10 == kindDuplicated); err != nil {
			failed("commit", err)
			return
		}
		fig.committed.Add(1)
		if i%10 == kindDuplicated {
			// A repeated Confirm changes nothing; a stray Cancel after it
			// is a conflict.
			if _, err := direct.Confirm(octx, &tccv1.ConfirmRequest{Gid: gid, BranchId: "pay", Payload: pay}); err == nil {
				fig.dupOK.Add(1)
			}
			if _, err := direct.Cancel(octx, &tccv1.CancelRequest{Gid: gid, BranchId: "pay", Payload: pay}); status.Code(err) == codes.FailedPrecondition {
				fig.strayRefused.Add(1)
			}
		}
	}

	// Faults: the coordinator killed and restarted a third of the way in,
	// the PHP participant two thirds of the way in.
	var faultWG sync.WaitGroup
	faultWG.Add(1)
	go func() {
		defer faultWG.Done()
		for done.Load() < orders/3 {
			time.Sleep(10 * time.Millisecond)
		}
		coord.Kill()
		down := time.Now()
		time.Sleep(300 * time.Millisecond)
		if err := coord.Start(); err != nil {
			t.Errorf("restart coordinator: %v", err)
		}
		t.Logf("coordinator restarted at order %d, down %s", done.Load(), time.Since(down).Round(time.Millisecond))
		for done.Load() < 2*orders/3 {
			time.Sleep(10 * time.Millisecond)
		}
		phpSrv.kill()
		down = time.Now()
		time.Sleep(300 * time.Millisecond)
		if err := phpSrv.start(); err != nil {
			t.Errorf("restart the PHP participant: %v", err)
		}
		t.Logf("PHP participant restarted at order %d, down %s", done.Load(), time.Since(down).Round(time.Millisecond))
	}()
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				place(i)
				done.Add(1)
			}
		}()
	}
	for i := 0; i < orders; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	faultWG.Wait()
	placed := time.Since(started)
	t.Logf("errors seen by the initiators: %v", errSeen)

	// Settle: every transaction final at the coordinator, no TRIED row at
	// either participant.
	pdb, err := sql.Open("sqlite", phpDB+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	coordClient := c.Coordinator()
	final := map[string]tccv1.TransactionState{}
	deadline := time.Now().Add(60 * time.Second)
	lastReport := time.Now()
	for {
		pending := 0
		for i := 0; i < orders; i++ {
			gid := fmt.Sprintf("order-%03d", i)
			if st, ok := final[gid]; ok && (st == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED || st == tccv1.TransactionState_TRANSACTION_STATE_ABORTED) {
				continue
			}
			r, err := coordClient.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: gid})
			switch {
			case status.Code(err) == codes.NotFound:
				final[gid] = tccv1.TransactionState_TRANSACTION_STATE_UNSPECIFIED
			case err != nil:
				pending++
			default:
				final[gid] = r.GetTransaction().GetState()
				if st := final[gid]; st != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED && st != tccv1.TransactionState_TRANSACTION_STATE_ABORTED {
					pending++
				}
			}
		}
		tried := count(t, pdb, "SELECT COUNT(*) FROM settle_fence WHERE state = 'TRIED'") + count(t, ddb, "SELECT COUNT(*) FROM settle_fence WHERE state = 'TRIED'")
		if pending == 0 && tried == 0 {
			break
		}
		if time.Since(lastReport) > 5*time.Second {
			lastReport = time.Now()
			t.Logf("settling: %d transactions unfinished, %d TRIED fence rows", pending, tried)
			for gid, st := range final {
				if st != tccv1.TransactionState_TRANSACTION_STATE_COMMITTED && st != tccv1.TransactionState_TRANSACTION_STATE_ABORTED && st != tccv1.TransactionState_TRANSACTION_STATE_UNSPECIFIED {
					r, _ := coordClient.GetTransaction(ctx, &tccv1.GetTransactionRequest{Gid: gid})
					t.Logf("  %s: %v", gid, r.GetTransaction())
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled after 60s: %d transactions unfinished, %d TRIED fence rows\ncoordinator:\n%s", pending, tried, coord.Tail(3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	settled := time.Since(started)

	// All-or-nothing, from the participants' own tables.
	phpFence := fences(t, pdb)
	demoFence := fences(t, ddb)
	var committed, aborted, confirmedMoney int64
	confirmedQty := map[string]int64{}
	for i := 0; i < orders; i++ {
		gid := fmt.Sprintf("order-%03d", i)
		second := demoFence[gid+"/stock"]
		if i%10 == kindPHP {
			second = phpFence[gid+"/fee"]
		}
		first := phpFence[gid+"/pay"]
		st := final[gid]
		wantConfirmed := st == tccv1.TransactionState_TRANSACTION_STATE_COMMITTED
		if wantConfirmed {
			committed++
		} else {
			aborted++
		}
		for _, f := range []fence{first, second} {
			if (f.state == "CONFIRMED") != wantConfirmed {
				t.Errorf("%s: coordinator %v, branches %q and %q: not all-or-nothing", gid, st, first.state, second.state)
				break
			}
		}
		for _, f := range []fence{first, second} {
			if f.state != "CONFIRMED" {
				continue
			}
			var p demo.Payload
			if err := json.Unmarshal(f.payload, &p); err != nil {
				t.Fatalf("%s: payload %q: %v", gid, f.payload, err)
			}
			confirmedMoney += p.Amount
			if p.SKU != "" {
				confirmedQty[p.SKU] += p.Qty
			}
		}
	}

	// Conservation: money at the PHP participant, stock at the demo.
	var balances, frozen, merchant int64
	if err := pdb.QueryRowContext(ctx, "SELECT SUM(balance), SUM(frozen), (SELECT balance FROM account WHERE name = 'merchant') FROM account").Scan(&balances, &frozen, &merchant); err != nil {
		t.Fatal(err)
	}
	if balances != moneyTotal || frozen != 0 || merchant != confirmedMoney {
		t.Errorf("PHP participant: balances %d (want %d), frozen %d (want 0), merchant %d (want the confirmed payments, %d)", balances, moneyTotal, frozen, merchant, confirmedMoney)
	}
	for sku, total := range stockTotal {
		var stock, reserved, sold int64
		if err := ddb.QueryRowContext(ctx, "SELECT stock, reserved, sold FROM demo_stock WHERE sku = ?", sku).Scan(&stock, &reserved, &sold); err != nil {
			t.Fatal(err)
		}
		if stock+sold != total || reserved != 0 || sold != confirmedQty[sku] {
			t.Errorf("demo %s: stock %d + sold %d (want %d), reserved %d (want 0), sold %d (want the confirmed quantities, %d)", sku, stock, sold, total, reserved, sold, confirmedQty[sku])
		}
	}
	nullComp := count(t, pdb, "SELECT COUNT(*) FROM settle_fence WHERE state = 'CANCELLED' AND tried = 0")
	t.Logf("%d orders (%d by initiator.php) in %s (build %s), settled after %s; coordinator: %d committed, %d aborted; "+
		"SDK/initiator saw %d commits, %d rollbacks (%d refusals), %d errors (coordinator kill, PHP restart); "+
		"late Trys after Cancel: %d refused, %d let through and released, %d unanswered (PHP down); duplicated Confirms answered OK: %d, stray Cancels refused: %d; "+
		"PHP null compensations: %d; check-back passes: %d, verdicts applied by them: %d, pending answers: %d; money moved %d cents, pens sold %d, books sold %d",
		orders, fig.php.Load(), placed-built, built.Round(time.Millisecond), settled-built, committed, aborted,
		fig.committed.Load(), fig.rolledBack.Load(), fig.refused.Load(), fig.errored.Load(),
		fig.lateTryRefused.Load(), fig.lateTryPassed.Load(), fig.lateTryUnanswered.Load(), fig.dupOK.Load(), fig.strayRefused.Load(),
		nullComp, checkbackPasses.Load(), checkbackApplied.Load(), checkbackPending.Load(), confirmedMoney, confirmedQty["pen"], confirmedQty["book"])
	// The check-back loop got answers (with its bearer token): the
	// abandoned orders stay TRYING for 5 s, past the 1.5 s check delay.
	if committed == 0 || aborted == 0 || fig.refused.Load() == 0 || fig.lateTryRefused.Load() == 0 || fig.dupOK.Load() == 0 ||
		checkbackPending.Load()+checkbackApplied.Load() == 0 {
		t.Errorf("the run did not exercise every case (committed %d, aborted %d, refused %d, late Trys refused %d, duplicated Confirms %d, check-back answers %d)",
			committed, aborted, fig.refused.Load(), fig.lateTryRefused.Load(), fig.dupOK.Load(), checkbackPending.Load()+checkbackApplied.Load())
	}
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(dir, "php.log"))
		t.Logf("php log tail:\n%s", tail(string(b), 4000))
	}
}

func randomToken(t *testing.T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

type fence struct {
	state   string
	payload []byte
}

func fences(t *testing.T, db *sql.DB) map[string]fence {
	t.Helper()
	rows, err := db.Query("SELECT gid, branch_id, state, payload FROM settle_fence")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]fence{}
	for rows.Next() {
		var gid, branch string
		var f fence
		if err := rows.Scan(&gid, &branch, &f.state, &f.payload); err != nil {
			t.Fatal(err)
		}
		out[gid+"/"+branch] = f
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return n
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
