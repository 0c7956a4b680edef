package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/settle-tcc/settle/client"
)

// The order service's own table for orders committed through a local
// transaction (Order.Local): the row is written in the same local
// transaction as the decision row (gid, commit), so it exists if and only
// if the global transaction commits. Portable DDL (SQLite, MySQL,
// PostgreSQL).
const ordersDDL = `CREATE TABLE IF NOT EXISTS demo_order (
	gid VARCHAR(128) NOT NULL PRIMARY KEY,
	user_name VARCHAR(64) NOT NULL,
	sku VARCHAR(64) NOT NULL,
	qty BIGINT NOT NULL,
	amount BIGINT NOT NULL,
	created_us BIGINT NOT NULL
)`

// EnsureOrderService creates the order service's tables in db: demo_order
// and the SDK's decision table (client.EnsureDecisionTable). Idempotent.
func EnsureOrderService(ctx context.Context, db *gorm.DB) error {
	if err := db.WithContext(ctx).Exec(ordersDDL).Error; err != nil {
		return fmt.Errorf("demo: create demo_order: %w", err)
	}
	return client.EnsureDecisionTable(ctx, db)
}

// Local makes PlaceOrder commit through the order service's own database:
// the order row and the decision row in one local transaction
// (client.Txn.CommitLocal), with Decider (a client.Decider over DB,
// served by `participant-demo serve`) named at Begin.
type Local struct {
	// DB is the order service's database (EnsureOrderService done).
	DB *gorm.DB
	// Decider is the target serving client.Decider over DB.
	Decider string
}

// PlacedOrder is a demo_order row.
type PlacedOrder struct {
	GID    string
	User   string
	SKU    string
	Qty    int64
	Amount int64
}

// ErrNoOrder: no demo_order row for the gid.
var ErrNoOrder = errors.New("demo: no such order")

// LookupOrder reads the order service's row of gid.
func LookupOrder(ctx context.Context, db *gorm.DB, gid string) (PlacedOrder, error) {
	var o PlacedOrder
	row := db.WithContext(ctx).Raw("SELECT gid, user_name, sku, qty, amount FROM demo_order WHERE gid = ?", gid).Row()
	if err := row.Scan(&o.GID, &o.User, &o.SKU, &o.Qty, &o.Amount); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return PlacedOrder{}, ErrNoOrder
		}
		return PlacedOrder{}, fmt.Errorf("demo: read order %s: %w", gid, err)
	}
	return o, nil
}

// InsertOrder is the business change of a local commit: the order row.
func InsertOrder(tx *gorm.DB, o PlacedOrder) error {
	return tx.Exec("INSERT INTO demo_order (gid, user_name, sku, qty, amount, created_us) VALUES (?, ?, ?, ?, ?, ?)",
		o.GID, o.User, o.SKU, o.Qty, o.Amount, time.Now().UnixMicro()).Error
}
