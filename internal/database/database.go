// Package database opens the SQL databases Settle's binaries use, from one
// spec string: "sqlite:<path>" (embedded, pure Go, no cgo),
// "mysql:<go-sql-driver DSN>" (MySQL 8 / MariaDB 10.6 or newer) or
// "postgres:<DSN>" (PostgreSQL 13 or newer, through pgx; the DSN is a URL,
// "postgres://user@host:5432/db?sslmode=disable", which may also be given
// alone as the spec, or keyword/value pairs, "host=... dbname=...").
//
// It only opens connections and applies safe defaults (UTC, parseTime,
// pool sizes, SQLite WAL and busy timeout); schemas belong to the packages
// that own the tables.
package database

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the SQL dialect behind a *gorm.DB.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	MySQL    Dialect = "mysql"
	Postgres Dialect = "postgres"
)

// ErrBadSpec is returned for a spec that is none of "sqlite:...",
// "mysql:..." and "postgres:...".
var ErrBadSpec = errors.New("database: spec must be sqlite:<path>, mysql:<dsn> or postgres:<dsn>")

// Open opens the database named by spec. The caller owns the returned handle
// and closes it with Close.
func Open(spec string) (*gorm.DB, Dialect, error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok || rest == "" {
		return nil, "", badSpec(kind, ok)
	}
	cfg := &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		PrepareStmt:            false,
	}
	switch kind {
	case "sqlite":
		db, err := openSQLite(rest, cfg)
		return db, SQLite, err
	case "mysql":
		db, err := openMySQL(rest, cfg)
		return db, MySQL, err
	case "postgres", "postgresql":
		if strings.HasPrefix(rest, "//") {
			// The URL alone: "postgres://user@host/db".
			rest = spec
		}
		db, err := openPostgres(rest, cfg)
		return db, Postgres, err
	default:
		return nil, "", badSpec(kind, ok)
	}
}

// badSpec describes a spec that names no known database without repeating
// it: what follows the kind may hold a password ("mysq:root:hunter2@...").
func badSpec(kind string, hasColon bool) error {
	if !hasColon {
		return fmt.Errorf("%w (the spec has no \":\")", ErrBadSpec)
	}
	if len(kind) > 16 || strings.ContainsAny(kind, "@/()") {
		return fmt.Errorf("%w (the spec does not start with sqlite:, mysql: or postgres:)", ErrBadSpec)
	}
	return fmt.Errorf("%w (got %q)", ErrBadSpec, kind+":...")
}

// OpenExisting is Open for a database that must exist already: for SQLite
// it refuses a missing file instead of creating an empty one (a read-only
// command run from the wrong directory would otherwise leave an empty
// database behind and fail with "no such table").
func OpenExisting(spec string) (*gorm.DB, Dialect, error) {
	if path, ok := strings.CutPrefix(spec, "sqlite:"); ok {
		path, _, _ = strings.Cut(strings.TrimPrefix(path, "file:"), "?")
		if path != "" && path != ":memory:" {
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				abs, _ := filepath.Abs(path)
				return nil, "", fmt.Errorf("database: sqlite file %s does not exist: %w", abs, ErrNotExist)
			}
		}
	}
	return Open(spec)
}

// ErrNotExist is returned by OpenExisting for a missing SQLite file.
var ErrNotExist = errors.New("no such database")

func openSQLite(path string, cfg *gorm.Config) (*gorm.DB, error) {
	// One writer at a time is SQLite's model; WAL lets readers run beside it
	// and busy_timeout makes a second writer wait instead of failing.
	dsn := path
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	dsn += sep + "_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)&_txlock=immediate"
	db, err := gorm.Open(sqlite.Open(dsn), cfg)
	if err != nil {
		return nil, fmt.Errorf("database: open sqlite %s: %w", path, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("database: open sqlite %s: %w", path, err)
	}
	// A single connection serialises writers inside the process, which is
	// what SQLite does anyway, and avoids SQLITE_BUSY between our own
	// connections.
	sqlDB.SetMaxOpenConns(1)
	if err := sqlDB.Ping(); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("database: open sqlite %s: %w", path, err)
	}
	return db, nil
}

func openMySQL(dsn string, cfg *gorm.Config) (*gorm.DB, error) {
	mc, err := gomysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("database: parse mysql dsn: %w", err)
	}
	// All times are written and compared as UTC by the application.
	mc.ParseTime = true
	mc.Loc = time.UTC
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	if _, ok := mc.Params["time_zone"]; !ok {
		mc.Params["time_zone"] = "'+00:00'"
	}
	mc.InterpolateParams = true
	// The store sends short write transactions as one multi-statement
	// query ("BEGIN; ...; COMMIT": one round trip instead of one per
	// statement; see internal/sqlstore/script.go). Every statement is
	// built from constant SQL with ? parameters, interpolated with
	// escaping by the driver; nothing is ever concatenated into SQL.
	mc.MultiStatements = true
	db, err := gorm.Open(mysql.New(mysql.Config{DSNConfig: mc}), cfg)
	if err != nil {
		return nil, fmt.Errorf("database: open mysql %s@%s/%s: %w", mc.User, mc.Addr, mc.DBName, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("database: open mysql: %w", err)
	}
	sqlDB.SetMaxOpenConns(64)
	sqlDB.SetMaxIdleConns(64)
	sqlDB.SetConnMaxLifetime(30 * time.Minute)
	if err := sqlDB.Ping(); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("database: ping mysql %s/%s: %w", mc.Addr, mc.DBName, err)
	}
	return db, nil
}

// Close closes the connection pool behind db.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}
