package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/dbtest"
)

func secret(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// outputs collects everything a run printed or answered, to grep it for
// secrets at the end.
type outputs struct {
	t    *testing.T
	seen []string
}

func (o *outputs) add(what, text string) { o.seen = append(o.seen, "--- "+what+"\n"+text) }

// run runs a command of the coordinator binary to its end and records its
// output.
func (o *outputs) run(what string, env []string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Coordinator, args...)
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.CombinedOutput()
	o.add(what, string(out))
	return string(out)
}

func (o *outputs) get(what, url, token string) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		o.add(what, err.Error())
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	o.add(what, resp.Status+"\n"+string(b))
}

// check fails the test for every secret found in any output.
func (o *outputs) check(secrets ...string) {
	o.t.Helper()
	for _, text := range o.seen {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				o.t.Errorf("a secret appears in the output:\n%s", text)
			}
		}
	}
}

// TestSecretsNeverPrinted runs the coordinator with a database password
// and bearer tokens configured, at debug log level, and makes it print all
// it can: start-up, calls with good and wrong tokens, refusals, the admin
// CLI's output, metrics, and the errors of a wrong password and a
// mistyped -db. No password or token may appear in any of it.
func TestSecretsNeverPrinted(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the real coordinator")
	}
	spec := dbtest.NewMySQL(t) // skipped (or failed in CI) without MariaDB
	admin := dbtest.Open(t, spec)
	cfg, err := gomysql.ParseDSN(strings.TrimPrefix(spec, "mysql:"))
	if err != nil {
		t.Fatal(err)
	}
	user, password, wrongPassword := "settle_"+secret("u")[2:12], secret("pw"), secret("wrongpw")
	for _, stmt := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + password + "'",
		"GRANT ALL ON `" + cfg.DBName + "`.* TO '" + user + "'@'%'",
	} {
		if err := admin.Exec(stmt).Error; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = admin.Exec("DROP USER IF EXISTS '" + user + "'@'%'").Error })
	cfg.User, cfg.Passwd = user, password
	dsn := cfg.FormatDSN()
	cfg.Passwd = wrongPassword
	wrongDSN := cfg.FormatDSN()

	opsToken, initToken, bogusToken := secret("ops"), secret("init"), secret("bogus")
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(opsToken+",alice,operator\n"+initToken+",orders,initiator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opsFile := filepath.Join(dir, "ops-token")
	if err := os.WriteFile(opsFile, []byte(opsToken), 0o600); err != nil {
		t.Fatal(err)
	}

	out := &outputs{t: t}
	addr, httpAddr := freeAddr(t), freeAddr(t)
	coord := start(t, "coordinator", bins.Coordinator, addr, nil,
		"-listen", addr, "-http-listen", httpAddr, "-db", "mysql:"+dsn, "-auth-token-file", tokens, "-log-level", "debug")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(addr, client.WithToken(initToken))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Begin(ctx, client.BeginOptions{GID: "secret-1"}); err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(client.BearerToken(bogusToken)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = tccv1.NewCoordinatorServiceClient(cc).Commit(ctx, &tccv1.CommitRequest{Gid: "secret-1"})
	out.add("a call with a wrong token", err.Error())
	_, err = c.Coordinator().CheckBack(ctx, &tccv1.CheckBackRequest{Gid: "secret-1"}) // the wrong role
	out.add("a call with the wrong role", err.Error())

	out.run("admin list", nil, "admin", "list", "-addr", addr, "-token-file", opsFile)
	out.run("admin show", []string{"SETTLE_TOKEN=" + opsToken}, "admin", "show", "-gid", "secret-1", "-addr", addr)
	out.run("admin with a wrong token", []string{"SETTLE_TOKEN=" + bogusToken}, "admin", "list", "-addr", addr)
	out.get("metrics", "http://"+httpAddr+"/metrics", "")
	out.get("HTTP with a wrong token", "http://"+httpAddr+"/v1/transactions/secret-1", bogusToken)
	out.get("HTTP with a good token", "http://"+httpAddr+"/v1/transactions/secret-1", initToken)

	out.run("a wrong database password", nil, "-listen", freeAddr(t), "-http-listen", "off", "-db", "mysql:"+wrongDSN)
	out.run("migrate with a wrong password", nil, "migrate", "-db", "mysql:"+wrongDSN)
	out.run("a mistyped -db", nil, "-listen", freeAddr(t), "-db", "mysq:"+dsn)
	out.run("a DSN that does not parse", nil, "-listen", freeAddr(t), "-db", "mysql:"+user+":"+password+"@tcp(127.0.0.1:3306/x")
	out.run("a broken token file", nil, "-listen", freeAddr(t), "-auth-token-file", writeFile(t, opsToken+",alice\n"))

	out.add("the coordinator's own output", coord.Tail(1<<20))
	out.check(password, wrongPassword, opsToken, initToken, bogusToken)
	if t.Failed() {
		return
	}
	t.Logf("%d outputs checked for the password, the wrong password and three tokens: none found", len(out.seen))
}

func writeFile(t *testing.T, text string) string {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSecretsNeverPrintedPostgres is TestSecretsNeverPrinted's database
// half for a postgres: spec: the coordinator runs at debug level with a
// password in its DSN (URL form), and fails to start with a password in a
// DSN that does not parse, in a keyword/value DSN naming a port nothing
// listens on, and in a mistyped spec. The test server trusts local
// connections (no wrong-password case): the password is checked for in
// every output all the same.
func TestSecretsNeverPrintedPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the real coordinator")
	}
	spec := dbtest.NewPostgres(t) // skipped (or failed in CI) without PostgreSQL
	admin := dbtest.Open(t, spec)
	if !strings.Contains(spec, "://") {
		t.Skipf("%s is in key=value form; this test rewrites a URL", dbtest.EnvPostgresDSN)
	}
	u, err := url.Parse(strings.TrimPrefix(spec, "postgres:"))
	if err != nil {
		t.Fatal(err)
	}
	user, password := "settle_"+secret("u")[2:12], secret("pw")
	dbName := strings.TrimPrefix(u.Path, "/")
	for _, stmt := range []string{
		"CREATE ROLE " + user + " LOGIN PASSWORD '" + password + "'",
		"GRANT ALL ON DATABASE " + dbName + " TO " + user,
		"GRANT ALL ON SCHEMA public TO " + user,
	} {
		if err := admin.Exec(stmt).Error; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = admin.Exec("DROP OWNED BY " + user).Error
		_ = admin.Exec("DROP ROLE IF EXISTS " + user).Error
	})
	u.User = url.UserPassword(user, password)
	dsn := u.String()

	out := &outputs{t: t}
	addr := freeAddr(t)
	coord := start(t, "coordinator", bins.Coordinator, addr, nil,
		"-listen", addr, "-http-listen", "", "-db", "postgres:"+dsn, "-log-level", "debug")
	c, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Begin(ctx, client.BeginOptions{GID: "secret-pg"}); err != nil {
		t.Fatal(err)
	}
	out.run("migrate", nil, "migrate", "-db", dsn)
	out.run("a DSN that does not parse", nil, "-listen", freeAddr(t), "-http-listen", "off",
		"-db", "postgres://"+user+":"+password+"@127.0.0.1:notaport/x")
	out.run("an unreachable server", nil, "-listen", freeAddr(t), "-http-listen", "off",
		"-db", "postgres:host=127.0.0.1 port=1 user="+user+" password="+password+" dbname=x connect_timeout=5")
	out.run("a mistyped -db", nil, "-listen", freeAddr(t), "-db", "postgress://"+user+":"+password+"@127.0.0.1/x")
	out.add("the coordinator's own output", coord.Tail(1<<20))
	out.check(password)
	if t.Failed() {
		return
	}
	t.Logf("%d outputs checked for the password: none found", len(out.seen))
}
