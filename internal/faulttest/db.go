package faulttest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/settle-tcc/settle/internal/database"
)

// Databases creates fresh databases for a run and drops them afterwards.
type Databases struct {
	mu      sync.Mutex
	kind    database.Dialect
	admin   string // MySQL or PostgreSQL DSN to create databases with; "" for SQLite
	prefix  string // MySQL or PostgreSQL database name prefix
	dir     string // SQLite directory
	created []string
}

// NewSQLiteDatabases creates SQLite files in a new temporary directory.
func NewSQLiteDatabases() (*Databases, error) {
	dir, err := os.MkdirTemp("", "settle-faults-sqlite-")
	if err != nil {
		return nil, err
	}
	return &Databases{dir: dir}, nil
}

// NewMySQLDatabases creates databases named <prefix><random> on the server
// of adminDSN (a go-sql-driver DSN such as "root@tcp(127.0.0.1:3306)/").
// Tests use the prefix "settle_t_", which CI's cleanup drops; a long run
// needs another one, or a CI run starting meanwhile drops its databases.
func NewMySQLDatabases(adminDSN, prefix string) (*Databases, error) {
	if _, err := gomysql.ParseDSN(adminDSN); err != nil {
		return nil, err
	}
	if !validPrefix.MatchString(prefix) {
		return nil, fmt.Errorf("database prefix %q: want letters, digits and _", prefix)
	}
	return &Databases{kind: database.MySQL, admin: adminDSN, prefix: prefix}, nil
}

// NewPostgresDatabases creates databases named <prefix><random> on the
// server of adminDSN (a URL or keyword/value DSN, such as
// "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), with
// the same prefix rules as NewMySQLDatabases.
func NewPostgresDatabases(adminDSN, prefix string) (*Databases, error) {
	if !validPrefix.MatchString(prefix) {
		return nil, fmt.Errorf("database prefix %q: want letters, digits and _", prefix)
	}
	if _, err := database.PostgresWithDatabase(adminDSN, "x"); err != nil {
		return nil, err
	}
	return &Databases{kind: database.Postgres, admin: adminDSN, prefix: prefix}, nil
}

var validPrefix = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,40}$`)

// New returns the spec of a fresh database; name says what it is for.
func (d *Databases) New(name string) (string, error) {
	suffix := make([]byte, 5)
	if _, err := rand.Read(suffix); err != nil {
		return "", err
	}
	if d.admin == "" {
		return "sqlite:" + filepath.Join(d.dir, name+"-"+hex.EncodeToString(suffix)+".db"), nil
	}
	db, _, err := database.Open(string(d.kind) + ":" + d.admin)
	if err != nil {
		return "", err
	}
	defer database.Close(db)
	dbName := d.prefix + hex.EncodeToString(suffix)
	create := "CREATE DATABASE " + dbName + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
	if d.kind == database.Postgres {
		create = "CREATE DATABASE " + dbName + " ENCODING 'UTF8' TEMPLATE template0"
	}
	if err := db.Exec(create).Error; err != nil {
		return "", fmt.Errorf("create database %s: %w", dbName, err)
	}
	d.mu.Lock()
	d.created = append(d.created, dbName)
	d.mu.Unlock()
	if d.kind == database.Postgres {
		dsn, err := database.PostgresWithDatabase(d.admin, dbName)
		return "postgres:" + dsn, err
	}
	cfg, err := gomysql.ParseDSN(d.admin)
	if err != nil {
		return "", err
	}
	cfg.DBName = dbName
	return "mysql:" + cfg.FormatDSN(), nil
}

// Drop removes every database created.
func (d *Databases) Drop() error {
	if d.admin == "" {
		return os.RemoveAll(d.dir)
	}
	db, _, err := database.Open(string(d.kind) + ":" + d.admin)
	if err != nil {
		return err
	}
	defer database.Close(db)
	force := ""
	if d.kind == database.Postgres {
		force = " WITH (FORCE)" // a killed process's connections do not keep it
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, name := range d.created {
		if err := db.Exec("DROP DATABASE IF EXISTS " + name + force).Error; err != nil {
			return err
		}
	}
	d.created = nil
	return nil
}
