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
	ignore := "INSERT IGNORE INTO"
	if dialect == database.SQLite {
		ignore = "INSERT OR IGNORE INTO"
	}
	for i := range n {
		name := "bench-" + strconv.Itoa(i)
		if err := db.WithContext(ctx).Exec(ignore+" demo_account (name, balance, frozen) VALUES (?, ?, 0)", name, funds).Error; err != nil {
			return fmt.Errorf("demo seed %s: %w", spec, err)
		}
		if err := db.WithContext(ctx).Exec(ignore+" demo_stock (sku, stock, reserved, sold) VALUES (?, ?, 0, 0)", name, funds).Error; err != nil {
			return fmt.Errorf("demo seed %s: %w", spec, err)
		}
	}
	return nil
}
