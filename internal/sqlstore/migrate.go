package sqlstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/internal/database"
)

//go:embed migrations
var migrations embed.FS

// VersionTable records applied migrations.
const VersionTable = "settle_schema_version"

// Migrate applies the pending migrations for dialect. On MySQL a table lock,
// on PostgreSQL a session advisory lock, makes concurrent callers (several
// coordinators starting at once) apply each migration once.
func Migrate(ctx context.Context, db *gorm.DB, dialect database.Dialect) error {
	sqlDB, err := db.DB()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations/"+string(dialect))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithTableName(VersionTable), goose.WithDisableGlobalRegistry(true)}
	gd := goose.DialectSQLite3
	switch dialect {
	case database.MySQL:
		gd = goose.DialectMySQL
		locker, err := lock.NewMySQLTableLocker()
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		opts = append(opts, goose.WithLocker(locker))
	case database.Postgres:
		gd = goose.DialectPostgres
		// Advisory locks are per database; a waiting coordinator asks
		// again every second, for up to five minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, sqlDB, sub, opts...)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s schema: %w", dialect, err)
	}
	return nil
}

// MigrationSQL returns the migration files of dialect by name, for the
// `coordinator migrate -print` command and the docs.
func MigrationSQL(dialect database.Dialect) (map[string]string, error) {
	out := map[string]string{}
	dir := "migrations/" + string(dialect)
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b, err := fs.ReadFile(migrations, dir+"/"+e.Name())
		if err != nil {
			return nil, err
		}
		out[e.Name()] = string(b)
	}
	return out, nil
}
