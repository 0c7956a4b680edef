package database

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// Pool sizes for PostgreSQL. Each connection is a server process, and the
// server's default max_connections is 100: a few coordinators with 32
// each stay under it. The store's writes are batched (one shared write at a
// time), so the hot path needs few connections.
const (
	postgresMaxOpen = 32
	postgresMaxIdle = 32
	// postgresPingIdle: a pooled connection idle longer is pinged before
	// reuse.
	postgresPingIdle = 30 * time.Second
)

// openPostgres opens dsn (a URL or keyword/value pairs) through pgx's
// database/sql driver.
//
// Queries run in pgx's "exec" mode unless the DSN sets
// default_query_exec_mode: each statement is one round trip (Parse, Bind,
// Execute and Sync sent together, parameters sent apart from the SQL), as
// MySQL's client-side interpolation is; nothing is prepared and cached per
// connection, which suits the store's statements whose text varies with
// the size of a batch, and works behind PgBouncer in transaction mode.
func openPostgres(dsn string, cfg *gorm.Config) (*gorm.DB, error) {
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors repeat the DSN with the password masked on a
		// best-effort basis, and url.Parse's the URL as it is: say what is
		// wrong without either.
		return nil, fmt.Errorf("database: parse postgres dsn: %w (expected postgres://user@host:port/db?sslmode=... or host=... user=... dbname=...)", errBadPostgresDSN)
	}
	if !strings.Contains(dsn, "default_query_exec_mode") {
		pc.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	// All times are written and compared as UTC by the application (they
	// are BIGINT microseconds); the session zone only matters to humans
	// reading now() in psql.
	pc.RuntimeParams["timezone"] = "UTC"
	if _, ok := pc.RuntimeParams["application_name"]; !ok {
		pc.RuntimeParams["application_name"] = "settle"
	}
	where := fmt.Sprintf("%s@%s:%d/%s", pc.User, pc.Host, pc.Port, pc.Database)
	// database/sql asks the driver to check a pooled connection before
	// reusing it; pgx's default pings one idle for over a second: a hidden
	// round trip before the first statement of most calls at low load.
	// Ping only after half a minute idle (a connection the server or the
	// network dropped is found then; a write that fails before reaching the
	// server is retried by database/sql on another connection).
	sqlDB := stdlib.OpenDB(*pc, stdlib.OptionShouldPing(func(_ context.Context, p stdlib.ShouldPingParams) bool {
		return p.IdleDuration > postgresPingIdle
	}))
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), cfg)
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("database: open postgres %s: %w", where, redactPassword(err, pc.Password))
	}
	sqlDB.SetMaxOpenConns(postgresMaxOpen)
	sqlDB.SetMaxIdleConns(postgresMaxIdle)
	sqlDB.SetConnMaxLifetime(30 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("database: ping postgres %s: %w", where, redactPassword(err, pc.Password))
	}
	return db, nil
}

var errBadPostgresDSN = errors.New("invalid postgres dsn")

// redactPassword returns err, or when its text holds password a plain
// error with the password masked (pgx's connect errors name the user, host
// and database, never the password, but this does not rest on that).
func redactPassword(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "xxxxx"))
}

// PostgresWithDatabase returns dsn (a URL or keyword/value pairs) naming
// database name instead of its own.
func PostgresWithDatabase(dsn, name string) (string, error) {
	if !strings.Contains(dsn, "://") {
		// Keyword/value pairs: a later dbname overrides an earlier one.
		return dsn + " dbname=" + name, nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("database: parse postgres dsn: %w", errBadPostgresDSN)
	}
	u.Path = "/" + name
	return u.String(), nil
}
