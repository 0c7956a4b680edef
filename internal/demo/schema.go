package demo

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/settle-tcc/settle/internal/database"
	"github.com/settle-tcc/settle/participant"
)

// mysqlSchema creates the demo tables on MySQL/MariaDB. utf8mb4_bin makes
// keys compare byte for byte, as gids and branch ids must.
var mysqlSchema = []string{
	`CREATE TABLE IF NOT EXISTS demo_account (
  name    VARCHAR(64) NOT NULL,
  balance BIGINT      NOT NULL,
  frozen  BIGINT      NOT NULL DEFAULT 0,
  PRIMARY KEY (name),
  CONSTRAINT demo_account_amounts CHECK (balance >= 0 AND frozen >= 0 AND frozen <= balance)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
	`CREATE TABLE IF NOT EXISTS demo_stock (
  sku      VARCHAR(64) NOT NULL,
  stock    BIGINT      NOT NULL,
  reserved BIGINT      NOT NULL DEFAULT 0,
  sold     BIGINT      NOT NULL DEFAULT 0,
  PRIMARY KEY (sku),
  CONSTRAINT demo_stock_amounts CHECK (stock >= 0 AND reserved >= 0 AND sold >= 0 AND reserved <= stock)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
}

// sqliteSchema creates the demo tables on SQLite. The DATETIME type name
// makes the driver scan timestamps back into time.Time.
var sqliteSchema = []string{
	`CREATE TABLE IF NOT EXISTS demo_account (
  name    TEXT    NOT NULL PRIMARY KEY,
  balance INTEGER NOT NULL,
  frozen  INTEGER NOT NULL DEFAULT 0,
  CHECK (balance >= 0 AND frozen >= 0 AND frozen <= balance)
)`,
	`CREATE TABLE IF NOT EXISTS demo_stock (
  sku      TEXT    NOT NULL PRIMARY KEY,
  stock    INTEGER NOT NULL,
  reserved INTEGER NOT NULL DEFAULT 0,
  sold     INTEGER NOT NULL DEFAULT 0,
  CHECK (stock >= 0 AND reserved >= 0 AND sold >= 0 AND reserved <= stock)
)`,
}

// postgresSchema creates the demo tables on PostgreSQL. The "C" collation
// makes keys compare byte for byte.
var postgresSchema = []string{
	`CREATE TABLE IF NOT EXISTS demo_account (
  name    VARCHAR(64) COLLATE "C" NOT NULL PRIMARY KEY,
  balance BIGINT      NOT NULL,
  frozen  BIGINT      NOT NULL DEFAULT 0,
  CONSTRAINT demo_account_amounts CHECK (balance >= 0 AND frozen >= 0 AND frozen <= balance)
)`,
	`CREATE TABLE IF NOT EXISTS demo_stock (
  sku      VARCHAR(64) COLLATE "C" NOT NULL PRIMARY KEY,
  stock    BIGINT      NOT NULL,
  reserved BIGINT      NOT NULL DEFAULT 0,
  sold     BIGINT      NOT NULL DEFAULT 0,
  CONSTRAINT demo_stock_amounts CHECK (stock >= 0 AND reserved >= 0 AND sold >= 0 AND reserved <= stock)
)`,
}

// Migrate creates the demo tables and the participant SDK's fence table
// (participant.DefaultTable) if they do not exist. The fence lives in the
// same database as the business tables, as it must. It is safe to run
// concurrently and repeatedly.
func Migrate(ctx context.Context, db *gorm.DB, dialect database.Dialect) error {
	var stmts []string
	switch dialect {
	case database.MySQL:
		stmts = mysqlSchema
	case database.SQLite:
		stmts = sqliteSchema
	case database.Postgres:
		stmts = postgresSchema
	default:
		return fmt.Errorf("demo: migrate: unsupported dialect %q", dialect)
	}
	for _, s := range stmts {
		err := db.WithContext(ctx).Exec(s).Error
		// Two PostgreSQL sessions creating a table at once: the later one
		// fails on the system catalog's unique index; run again, the
		// statement sees the table.
		for i := 0; i < 3 && participant.IsDuplicateKey(err); i++ {
			err = db.WithContext(ctx).Exec(s).Error
		}
		if err != nil {
			return fmt.Errorf("demo: migrate: %w", err)
		}
	}
	return participant.Migrate(ctx, db)
}

// Seed fills an empty demo_account with SeedAccounts and an empty demo_stock
// with Catalog. Tables that already hold rows are left alone, and a
// concurrent Seed by another process is harmless.
func Seed(ctx context.Context, db *gorm.DB) error {
	db = db.WithContext(ctx)
	var n int64
	if err := db.Raw("SELECT COUNT(*) FROM demo_account").Scan(&n).Error; err != nil {
		return fmt.Errorf("demo: seed accounts: %w", err)
	}
	if n == 0 {
		err := db.Transaction(func(tx *gorm.DB) error {
			for _, a := range seedAccounts {
				if err := tx.Exec("INSERT INTO demo_account (name, balance, frozen) VALUES (?, ?, 0)", a.Name, a.Balance).Error; err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && !participant.IsDuplicateKey(err) {
			return fmt.Errorf("demo: seed accounts: %w", err)
		}
	}
	if err := db.Raw("SELECT COUNT(*) FROM demo_stock").Scan(&n).Error; err != nil {
		return fmt.Errorf("demo: seed stock: %w", err)
	}
	if n == 0 {
		err := db.Transaction(func(tx *gorm.DB) error {
			for _, it := range catalog {
				if err := tx.Exec("INSERT INTO demo_stock (sku, stock, reserved, sold) VALUES (?, ?, 0, 0)", it.SKU, it.InitialStock).Error; err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && !participant.IsDuplicateKey(err) {
			return fmt.Errorf("demo: seed stock: %w", err)
		}
	}
	return nil
}
