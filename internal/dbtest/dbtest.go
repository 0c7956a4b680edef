// Package dbtest gives tests real databases: a fresh SQLite file always, a
// fresh MySQL/MariaDB database when SETTLE_TEST_MYSQL_DSN is set (for
// example "root@tcp(127.0.0.1:3306)/test"), and a fresh PostgreSQL database
// when SETTLE_TEST_POSTGRES_DSN is set (for example
// "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"). Without a DSN
// that variant is skipped with a visible message, unless
// SETTLE_TEST_REQUIRE_MYSQL=1 or SETTLE_TEST_REQUIRE_POSTGRES=1 (set by CI)
// turns the skip into a failure.
package dbtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/internal/database"
)

// EnvMySQLDSN names the variable holding the MySQL DSN used by tests.
const EnvMySQLDSN = "SETTLE_TEST_MYSQL_DSN"

// EnvRequireMySQL, when "1", makes a missing MySQL DSN a test failure.
const EnvRequireMySQL = "SETTLE_TEST_REQUIRE_MYSQL"

// EnvPostgresDSN names the variable holding the PostgreSQL DSN used by
// tests (a URL or keyword/value pairs; the database it names is only used
// to create and drop the tests' own).
const EnvPostgresDSN = "SETTLE_TEST_POSTGRES_DSN"

// EnvRequirePostgres, when "1", makes a missing PostgreSQL DSN a test
// failure.
const EnvRequirePostgres = "SETTLE_TEST_REQUIRE_POSTGRES"

// Backend is one database a test can run against.
type Backend struct {
	// Name is "sqlite", "mysql" or "postgres"; use it as the subtest name.
	Name string
	// New creates a fresh, empty database for the calling test and returns
	// its spec ("sqlite:<path>", "mysql:<dsn>" or "postgres:<dsn>"). It is
	// dropped when the test ends.
	New func(t testing.TB) string
}

// Backends returns the backends to run a test against: SQLite always,
// MySQL and PostgreSQL when configured.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", New: NewSQLite},
		{Name: "mysql", New: NewMySQL},
		{Name: "postgres", New: NewPostgres},
	}
}

// ForEach runs fn as a subtest once per backend with a fresh database spec.
func ForEach(t *testing.T, fn func(t *testing.T, spec string)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, b.New(t))
		})
	}
}

// NewSQLite returns the spec of a new SQLite database file in t.TempDir().
func NewSQLite(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
}

// NewMySQL creates a fresh database on the server named by
// SETTLE_TEST_MYSQL_DSN, drops it when the test ends, and returns its spec.
func NewMySQL(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvMySQLDSN)
	if dsn == "" {
		if os.Getenv(EnvRequireMySQL) == "1" {
			t.Fatalf("%s is not set but %s=1: MySQL tests must run", EnvMySQLDSN, EnvRequireMySQL)
		}
		t.Skipf("MySQL tests skipped: set %s (e.g. root@tcp(127.0.0.1:3306)/test) to run them", EnvMySQLDSN)
	}
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvMySQLDSN, err)
	}
	admin, _, err := database.Open("mysql:" + dsn)
	if err != nil {
		t.Fatalf("open mysql: %v", err)
	}
	defer database.Close(admin)
	name := "settle_t_" + randomHex(6)
	if err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").Error; err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, _, err := database.Open("mysql:" + dsn)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer database.Close(db)
		if err := db.Exec("DROP DATABASE IF EXISTS " + name).Error; err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return "mysql:" + cfg.FormatDSN()
}

// NewPostgres creates a fresh database on the server named by
// SETTLE_TEST_POSTGRES_DSN, drops it when the test ends (WITH (FORCE):
// connections a failed test left open do not keep it), and returns its
// spec.
func NewPostgres(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvPostgresDSN)
	if dsn == "" {
		if os.Getenv(EnvRequirePostgres) == "1" {
			t.Fatalf("%s is not set but %s=1: PostgreSQL tests must run", EnvPostgresDSN, EnvRequirePostgres)
		}
		t.Skipf("PostgreSQL tests skipped: set %s (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run them", EnvPostgresDSN)
	}
	name := "settle_t_" + randomHex(6)
	spec, err := PostgresSpec(dsn, name)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgresDSN, err)
	}
	admin, _, err := database.Open("postgres:" + dsn)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	defer database.Close(admin)
	if err := admin.Exec("CREATE DATABASE " + name + " ENCODING 'UTF8' TEMPLATE template0").Error; err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, _, err := database.Open("postgres:" + dsn)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer database.Close(db)
		if err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").Error; err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return spec
}

// PostgresSpec returns the spec of database name on the server of dsn (a
// URL or keyword/value pairs).
func PostgresSpec(dsn, name string) (string, error) {
	d, err := database.PostgresWithDatabase(dsn, name)
	return "postgres:" + d, err
}

// Open opens spec and closes it when the test ends.
func Open(t testing.TB, spec string) *gorm.DB {
	t.Helper()
	db, _, err := database.Open(spec)
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	t.Cleanup(func() { _ = database.Close(db) })
	return db
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}
