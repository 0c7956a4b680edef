package database_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/internal/dbtest"
)

// TestPostgresErrorsHideSecrets: a DSN that does not parse and a server
// that cannot be reached are reported without the password.
func TestPostgresErrorsHideSecrets(t *testing.T) {
	for _, spec := range []string{
		"postgres:postgres://root:hunter2@127.0.0.1:notaport/settle",
		"postgres://root:hunter2@[::1/settle",
		"postgres:host=127.0.0.1 port=x password=hunter2",
		"postgres:host=127.0.0.1 password='hunter2",
		// Nothing listens on port 1: a connect error.
		"postgres://root:hunter2@127.0.0.1:1/settle?sslmode=disable&connect_timeout=5",
		"postgres:host=127.0.0.1 port=1 user=root password=hunter2 dbname=settle sslmode=disable connect_timeout=5",
	} {
		db, d, err := database.Open(spec)
		if err == nil {
			_ = database.Close(db)
			t.Fatalf("Open(%q) succeeded", spec)
		}
		if d != database.Postgres {
			t.Errorf("Open(%q): dialect %q, want postgres", spec, d)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q): the error repeats the password: %v", spec, err)
		}
	}
}

// TestPostgresOpen: both DSN forms open, the session is in UTC, and the
// spec may be the URL alone.
func TestPostgresOpen(t *testing.T) {
	spec := dbtest.NewPostgres(t)
	specs := []string{spec}
	if dsn := strings.TrimPrefix(spec, "postgres:"); strings.Contains(dsn, "://") {
		// The URL alone, and the same database as keyword/value pairs.
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		kv := fmt.Sprintf("postgres:host=%s port=%s user=%s dbname=%s", u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/"))
		if p, ok := u.User.Password(); ok {
			kv += " password=" + p
		}
		if m := u.Query().Get("sslmode"); m != "" {
			kv += " sslmode=" + m
		}
		specs = append(specs, dsn, kv)
	}
	for _, s := range specs {
		db, d, err := database.Open(s)
		if err != nil || d != database.Postgres {
			t.Fatalf("Open: dialect %q, %v", d, err)
		}
		var tz, app string
		if err := db.Raw("SHOW TimeZone").Scan(&tz).Error; err != nil || tz != "UTC" {
			t.Fatalf("session time zone %q (%v), want UTC", tz, err)
		}
		if err := db.Raw("SHOW application_name").Scan(&app).Error; err != nil || app != "settle" {
			t.Fatalf("application_name %q (%v), want settle", app, err)
		}
		_ = database.Close(db)
	}
}

// TestPostgresRetryable provokes a real deadlock (two transactions taking
// two row locks in opposite order) and a real serialization failure (two
// SERIALIZABLE transactions each reading what the other writes) and checks
// that both are classed retryable, and a duplicate key as a duplicate.
func TestPostgresRetryable(t *testing.T) {
	spec := dbtest.NewPostgres(t)
	db := dbtest.Open(t, spec)
	ctx := context.Background()
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlDB.ExecContext(ctx, `CREATE TABLE t (k INT PRIMARY KEY, v INT NOT NULL); INSERT INTO t VALUES (1, 0), (2, 0)`); err != nil {
		t.Fatal(err)
	}

	// Deadlock: A locks 1 then 2, B locks 2 then 1.
	a, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Rollback()
	b, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Rollback()
	if _, err := a.ExecContext(ctx, `UPDATE t SET v = v + 1 WHERE k = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ExecContext(ctx, `UPDATE t SET v = v + 1 WHERE k = 2`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); _, errs[0] = a.ExecContext(ctx, `UPDATE t SET v = v + 1 WHERE k = 2`) }()
	go func() { defer wg.Done(); _, errs[1] = b.ExecContext(ctx, `UPDATE t SET v = v + 1 WHERE k = 1`) }()
	wg.Wait()
	deadlock := errors.Join(errs...)
	if deadlock == nil || database.PostgresCode(deadlock) != "40P01" {
		t.Fatalf("opposite lock order: %v, want a deadlock (40P01)", deadlock)
	}
	if !database.IsRetryable(deadlock) || database.IsDuplicateKey(deadlock) {
		t.Fatalf("a deadlock is not classed retryable: %v", deadlock)
	}
	_ = a.Rollback()
	_ = b.Rollback()

	// Serialization failure: write skew under SERIALIZABLE (each reads
	// the sum the other's update changes).
	ser := &sql.TxOptions{Isolation: sql.LevelSerializable}
	x, err := sqlDB.BeginTx(ctx, ser)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Rollback()
	y, err := sqlDB.BeginTx(ctx, ser)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Rollback()
	var sum int
	for _, tx := range []*sql.Tx{x, y} {
		if err := tx.QueryRowContext(ctx, `SELECT sum(v) FROM t`).Scan(&sum); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := x.ExecContext(ctx, `UPDATE t SET v = v + 10 WHERE k = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := y.ExecContext(ctx, `UPDATE t SET v = v + 10 WHERE k = 2`); err != nil {
		t.Fatal(err)
	}
	failure := x.Commit()
	if failure == nil {
		failure = y.Commit()
	}
	if failure == nil || database.PostgresCode(failure) != "40001" {
		t.Fatalf("write skew under SERIALIZABLE: %v, want a serialization failure (40001)", failure)
	}
	if !database.IsRetryable(failure) {
		t.Fatalf("a serialization failure is not classed retryable: %v", failure)
	}

	// Duplicate key.
	_, dup := sqlDB.ExecContext(ctx, `INSERT INTO t VALUES (1, 0)`)
	if !database.IsDuplicateKey(dup) || database.IsRetryable(dup) {
		t.Fatalf("duplicate key: %v", dup)
	}
}
