package main

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	_ "github.com/go-sql-driver/mysql" // database/sql driver "mysql"

	"github.com/settle-tcc/settle/internal/database"
)

// dbStatus reads a database server's counters (deltas are reported per
// transaction) and durability settings.
type dbStatus interface {
	status(ctx context.Context) map[string]float64
	vars(ctx context.Context) map[string]string
	// note says what the counters cover.
	note() string
	close()
}

// mysqlStatus reads server-wide counters and settings of MySQL/MariaDB.
type mysqlStatus struct{ db *sql.DB }

// statusCounters are the SHOW GLOBAL STATUS counters reported per
// transaction. Questions counts statements sent by clients (our own SHOW
// statements are excluded by taking them outside the window edges' delta:
// two per snapshot, negligible).
var statusCounters = []string{"Questions", "Com_select", "Com_insert", "Com_update", "Com_delete", "Com_begin",
	"Com_commit", "Com_rollback", "Innodb_os_log_fsyncs", "Innodb_data_fsyncs"}

func openMySQLStatus(dsn string) (*mysqlStatus, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("-mysql-status: %w", err)
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("-mysql-status: %w", err)
	}
	return &mysqlStatus{db: db}, nil
}

func (m *mysqlStatus) close() { _ = m.db.Close() }

func (m *mysqlStatus) note() string {
	return "database counters are server-wide: other clients of the same server are counted too"
}

func (m *mysqlStatus) status(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m.show(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('"+strings.Join(statusCounters, "','")+"')") {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[k] = f
		}
	}
	return out
}

func (m *mysqlStatus) vars(ctx context.Context) map[string]string {
	return m.show(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('innodb_flush_log_at_trx_commit','sync_binlog','log_bin','version','transaction_isolation','tx_isolation')")
}

// show runs a SHOW ... statement and returns its name/value rows; empty on
// error (the figures are informative, never a reason to fail the run).
func (m *mysqlStatus) show(ctx context.Context, query string) map[string]string {
	out := map[string]string{}
	rows, err := m.db.QueryContext(ctx, query)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if rows.Scan(&k, &v) == nil {
			out[k] = v
		}
	}
	return out
}

// seedDemo creates, in the demo participant database spec, one account
// and one stock item per initiator ("bench-<n>") with funds and stock for
// any run (a transaction moves 1 cent and 1 unit per branch), so that
// initiators do not queue on one row and no Try is refused.
func seedDemo(ctx context.Context, spec string, n int) error {
	db, dialect, err := database.Open(spec)
	if err != nil {
		return fmt.Errorf("demo seed: %w", err)
	}
	defer func() { _ = database.Close(db) }()
	const funds = 1_000_000_000_000
	ignore, onConflict := "INSERT IGNORE INTO", ""
	switch dialect {
	case database.SQLite:
		ignore = "INSERT OR IGNORE INTO"
	case database.Postgres:
		ignore, onConflict = "INSERT INTO", " ON CONFLICT DO NOTHING"
	}
	for i := range n {
		name := "bench-" + strconv.Itoa(i)
		if err := db.WithContext(ctx).Exec(ignore+" demo_account (name, balance, frozen) VALUES (?, ?, 0)"+onConflict, name, funds).Error; err != nil {
			return fmt.Errorf("demo seed %s: %w", spec, err)
		}
		if err := db.WithContext(ctx).Exec(ignore+" demo_stock (sku, stock, reserved, sold) VALUES (?, ?, 0, 0)"+onConflict, name, funds).Error; err != nil {
			return fmt.Errorf("demo seed %s: %w", spec, err)
		}
	}
	return nil
}

// postgresStatus reads the counters of one PostgreSQL database
// (pg_stat_database) and the server's WAL (pg_stat_wal), and its
// settings. PostgreSQL publishes a backend's counters when its transaction
// ends (at most once a second while busy): over a window of seconds the
// deltas are close, not exact.
type postgresStatus struct{ db *sql.DB }

func openPostgresStatus(dsn string) (*postgresStatus, error) {
	db, _, err := database.Open("postgres:" + dsn)
	if err != nil {
		return nil, fmt.Errorf("-postgres-status: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("-postgres-status: %w", err)
	}
	sqlDB.SetMaxOpenConns(1)
	return &postgresStatus{db: sqlDB}, nil
}

func (p *postgresStatus) close() { _ = p.db.Close() }

func (p *postgresStatus) note() string {
	return "database counters: xact_* and tup_* are the -postgres-status database's (published by each session at most once a second), wal_* the server's"
}

func (p *postgresStatus) status(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	_, _ = p.db.ExecContext(ctx, "SELECT pg_stat_clear_snapshot()")
	var commit, rollback, ins, upd, del, fetched, walRecords, walSync float64
	err := p.db.QueryRowContext(ctx, `SELECT d.xact_commit, d.xact_rollback, d.tup_inserted, d.tup_updated, d.tup_deleted,
		d.tup_fetched, w.wal_records, w.wal_sync
		FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()`).Scan(
		&commit, &rollback, &ins, &upd, &del, &fetched, &walRecords, &walSync)
	if err != nil {
		return out
	}
	for k, v := range map[string]float64{"xact_commit": commit, "xact_rollback": rollback, "tup_inserted": ins,
		"tup_updated": upd, "tup_deleted": del, "tup_fetched": fetched, "wal_records": walRecords, "wal_sync": walSync} {
		out[k] = v
	}
	return out
}

func (p *postgresStatus) vars(ctx context.Context) map[string]string {
	out := map[string]string{}
	rows, err := p.db.QueryContext(ctx, `SELECT name, setting FROM pg_settings WHERE name IN
		('server_version', 'synchronous_commit', 'fsync', 'wal_sync_method', 'full_page_writes', 'default_transaction_isolation', 'max_connections')`)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if rows.Scan(&k, &v) == nil {
			out[k] = v
		}
	}
	return out
}
