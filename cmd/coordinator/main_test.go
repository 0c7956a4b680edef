package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/grpctest"
)

// envRunMain makes the test binary run main() instead of the tests, so
// that exit codes and output of the real command are observed.
const envRunMain = "SETTLE_TEST_RUN_COORDINATOR_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// command runs the coordinator command (this test binary running main)
// with args and returns its combined output and exit code.
func command(t *testing.T, ctx context.Context, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return string(out), 0
}

// startCoordinator runs a coordinator in-process on a temporary SQLite
// database, with one committed transaction "done".
func startCoordinator(t *testing.T) string {
	t.Helper()
	a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", DB: "sqlite:" + filepath.Join(t.TempDir(), "c.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	c := tccv1.NewCoordinatorServiceClient(grpctest.Dial(t, a.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Begin(ctx, &tccv1.BeginRequest{Gid: "done"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Commit(ctx, &tccv1.CommitRequest{Gid: "done", Wait: true}); err != nil {
		t.Fatal(err)
	}
	return a.Addr()
}

// TestAdminFlagsAfterCommand: connection flags work before and after the
// command name.
func TestAdminFlagsAfterCommand(t *testing.T) {
	addr := startCoordinator(t)
	for _, args := range [][]string{
		{"admin", "list", "-addr", addr},
		{"admin", "-addr", addr, "list"},
		{"admin", "list", "-state", "committed", "-addr", addr, "-timeout", "5s"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut.String())
		}
		if !strings.Contains(out.String(), "done") || !strings.Contains(out.String(), "COMMITTED") {
			t.Fatalf("%v printed:\n%s", args, out.String())
		}
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"admin", "list", "-addr", addr, "extra"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Fatalf("a stray argument was accepted: %v", err)
	}
}

// TestAdminErrorsNameTheOperationOnce: a refused retry or resolve says
// what was refused once, not "retry now G: retry now G: ...".
func TestAdminErrorsNameTheOperationOnce(t *testing.T) {
	addr := startCoordinator(t)
	for _, tc := range []struct {
		args   []string
		prefix string
	}{
		{[]string{"admin", "retry", "-gid", "done", "-addr", addr}, "retry now"},
		{[]string{"admin", "resolve", "-gid", "done", "-branch", "a", "-state", "confirmed", "-reason", "test", "-addr", addr}, "resolve branch"},
		{[]string{"admin", "retry", "-gid", "missing", "-addr", addr}, "retry now"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errOut)
		if err == nil {
			t.Fatalf("%v succeeded", tc.args)
		}
		if n := strings.Count(err.Error(), tc.prefix); n != 1 {
			t.Errorf("%v: %q names %q %d times, want once", tc.args, err, tc.prefix, n)
		}
	}
}

// TestHelp: -h exits 0; the top-level help lists the commands; admin -h
// lists admin's commands; admin list -h lists only the flags list uses.
func TestHelp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		args    []string
		want    []string
		notWant []string
	}{
		{[]string{"-h"}, []string{"migrate", "admin <command>", "-listen", "-http-listen"}, nil},
		{[]string{"admin", "-h"}, []string{"list", "show", "history", "retry", "resolve", "overview"}, nil},
		{[]string{"admin", "list", "-h"}, []string{"-state", "-needs-attention", "-gid-prefix", "-label", "-addr", "-tls-ca"}, []string{"-gid string", "-reason"}},
		{[]string{"admin", "resolve", "-h"}, []string{"-gid", "-branch", "-reason", "-addr"}, []string{"-needs-attention"}},
	} {
		out, code := command(t, ctx, tc.args...)
		if code != 0 {
			t.Errorf("%v exited %d:\n%s", tc.args, code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(out, w) {
				t.Errorf("%v: output lists %q, which it does not use:\n%s", tc.args, w, out)
			}
		}
	}
	if out, code := command(t, ctx, "admin", "frobnicate"); code == 0 || !strings.Contains(out, `unknown command "frobnicate"`) {
		t.Errorf("unknown admin command: exit %d:\n%s", code, out)
	}
}

func TestHTTPListenDerived(t *testing.T) {
	for _, tc := range []struct {
		listen, value string
		given         bool
		want          string
		wantErr       bool
	}{
		{"127.0.0.1:7400", "", false, "127.0.0.1:7401", false},
		{"127.0.0.1:7410", "", false, "127.0.0.1:7411", false},
		{"[::1]:9000", "", false, "[::1]:9001", false},
		{"127.0.0.1:0", "", false, "127.0.0.1:0", false},
		{"127.0.0.1:7400", "127.0.0.1:9999", true, "127.0.0.1:9999", false},
		{"127.0.0.1:7400", "", true, "", false},
		{"127.0.0.1:7400", "off", true, "", false},
		{"127.0.0.1:65535", "", false, "", true},
		{"nonsense", "", false, "", true},
	} {
		got, err := httpListen(tc.listen, tc.value, tc.given)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("httpListen(%q, %q, %v) = %q, %v; want %q (error %v)", tc.listen, tc.value, tc.given, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestSecondCoordinatorOnlyListenChanged: a coordinator started with only
// -listen set serves HTTP on the next port and prints both addresses.
func TestSecondCoordinatorOnlyListenChanged(t *testing.T) {
	port := freePortPair(t)
	listen := "127.0.0.1:" + strconv.Itoa(port)
	wantHTTP := "127.0.0.1:" + strconv.Itoa(port+1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-listen", listen, "-db", "sqlite:"+filepath.Join(t.TempDir(), "c.db"))
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + wantHTTP + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTP on %s: %v\n%s", wantHTTP, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	log := out.String()
	if !strings.Contains(log, "listen="+listen) || !strings.Contains(log, "http_listen="+wantHTTP) {
		t.Fatalf("start log does not print both addresses:\n%s", log)
	}
}

// freePortPair returns a port p such that p and p+1 were both free a
// moment ago.
func freePortPair(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no two consecutive free ports")
	return 0
}

// syncBuffer is a bytes.Buffer safe for a process's two output streams
// and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSIGHUPReloadsTokens: the real process re-reads its token file on
// SIGHUP; a broken file is logged and the tokens in force stay.
func TestSIGHUPReloadsTokens(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	oldTok, newTok := "operator-token-before-0001", "operator-token-after-00002"
	if err := os.WriteFile(tokens, []byte(oldTok+",alice,operator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePortPair(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-listen", addr, "-db", "sqlite:"+filepath.Join(dir, "c.db"), "-auth-token-file", tokens)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// list runs the admin CLI in-process with the token in SETTLE_TOKEN.
	list := func() (string, error) {
		var o, e bytes.Buffer
		err := run(ctx, []string{"admin", "list", "-addr", addr, "-timeout", "2s"}, &o, &e)
		return o.String() + e.String(), err
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s:\n%s", what, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Setenv("SETTLE_TOKEN", oldTok)
	waitFor("the coordinator to serve", func() bool { _, err := list(); return err == nil })

	if err := os.WriteFile(tokens, []byte(newTok+",alice,operator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SETTLE_TOKEN", newTok)
	waitFor("the new token to work after SIGHUP", func() bool { _, err := list(); return err == nil })
	t.Setenv("SETTLE_TOKEN", oldTok)
	if _, err := list(); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Fatalf("the old token after SIGHUP: %v", err)
	}

	if err := os.WriteFile(tokens, []byte("broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("the failed reload to be logged", func() bool { return strings.Contains(out.String(), "reload on SIGHUP failed") })
	t.Setenv("SETTLE_TOKEN", newTok)
	if _, err := list(); err != nil {
		t.Fatalf("a broken file dropped the tokens in force: %v", err)
	}
}

// TestAdminHistory: `admin history` prints a transaction's timeline with
// times relative to Begin, given the gid as -gid or as its argument.
func TestAdminHistory(t *testing.T) {
	addr := startCoordinator(t)
	for _, args := range [][]string{
		{"admin", "history", "-gid", "done", "-addr", addr},
		{"admin", "history", "done", "-addr", addr},
		{"admin", "-addr", addr, "history", "done"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut.String())
		}
		for _, want := range []string{"gid done, begun", "+0s", "BEGUN", "DECIDED", "COMMITTING by commit", "FINISHED", "COMMITTED"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("%v printed no %q:\n%s", args, want, out.String())
			}
		}
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"admin", "history", "missing", "-addr", addr}, &out, &errOut); err == nil ||
		!strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("history of an unknown gid: %v", err)
	}
	if err := run(context.Background(), []string{"admin", "history", "a", "b", "-addr", addr}, &out, &errOut); err == nil {
		t.Fatal("two gids accepted")
	}
}

// TestAdminOverview: `admin overview` prints the counts by state and the
// last hour's decisions.
func TestAdminOverview(t *testing.T) {
	addr := startCoordinator(t)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"admin", "overview", "-addr", addr}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	for _, want := range []string{"STATE", "COMMITTED", "needs attention (not final): 0", "oldest undecided (TRYING): none", "last hour: 1 decisions"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("admin overview printed no %q:\n%s", want, out.String())
		}
	}
}
