package demo

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/settle-tcc/settle/participant"
)

// Account is one row of demo_account.
type Account struct {
	// Name is the account name.
	Name string
	// Balance is the money held, in cents, including the frozen part.
	Balance int64
	// Frozen is the part of Balance reserved by tried, undecided branches.
	Frozen int64
}

// Stock is one row of demo_stock.
type Stock struct {
	// SKU identifies the item.
	SKU string
	// Stock is the units on hand, including the reserved ones.
	Stock int64
	// Reserved is the part of Stock held by tried, undecided branches.
	Reserved int64
	// Sold is the units taken by confirmed branches.
	Sold int64
}

// Snapshot is a consistent snapshot of the demo's resources, for display and
// for conservation checks: Balance and Goods never change through Try,
// Confirm or Cancel, and Frozen and Reserved return to zero once every
// branch is confirmed or cancelled.
type Snapshot struct {
	// Accounts lists every account, by name.
	Accounts []Account
	// Stock lists every item, by sku.
	Stock []Stock
	// Balance is the sum of all balances (the money in the system).
	Balance int64
	// Frozen is the sum of frozen amounts.
	Frozen int64
	// Reserved is the sum of reserved units over all items.
	Reserved int64
	// Goods maps each sku to stock + sold (the units in the system).
	Goods map[string]int64
}

// Totals reads the accounts and stock, and sums them, in one read
// transaction.
func Totals(ctx context.Context, db *gorm.DB) (Snapshot, error) {
	t := Snapshot{Goods: map[string]int64{}}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		rows, err := tx.Raw("SELECT name, balance, frozen FROM demo_account ORDER BY name").Rows()
		if err != nil {
			return err
		}
		for rows.Next() {
			var a Account
			if err := rows.Scan(&a.Name, &a.Balance, &a.Frozen); err != nil {
				rows.Close()
				return err
			}
			t.Accounts = append(t.Accounts, a)
			t.Balance += a.Balance
			t.Frozen += a.Frozen
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		rows, err = tx.Raw("SELECT sku, stock, reserved, sold FROM demo_stock ORDER BY sku").Rows()
		if err != nil {
			return err
		}
		for rows.Next() {
			var s Stock
			if err := rows.Scan(&s.SKU, &s.Stock, &s.Reserved, &s.Sold); err != nil {
				rows.Close()
				return err
			}
			t.Stock = append(t.Stock, s)
			t.Reserved += s.Reserved
			t.Goods[s.SKU] = s.Stock + s.Sold
		}
		return closeRows(rows)
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("demo: read totals: %w", err)
	}
	return t, nil
}

// Fence states, as stored in the fence table (participant.State values).
const (
	// StateTried: Try succeeded and holds a reservation.
	StateTried = string(participant.StateTried)
	// StateConfirmed: Confirm applied the reservation.
	StateConfirmed = string(participant.StateConfirmed)
	// StateCancelled: Cancel released the reservation, or recorded a null
	// compensation when no Try had been seen.
	StateCancelled = string(participant.StateCancelled)
)

// Fence is one fence row: what the participant did for one branch.
type Fence struct {
	// Resource is the resource the branch is for, read from its payload
	// (empty if the payload does not parse).
	Resource Resource
	// GID is the global transaction id.
	GID string
	// BranchID is the branch id.
	BranchID string
	// State is StateTried, StateConfirmed or StateCancelled.
	State string
	// Tried is false for a null compensation (Cancel with no Try).
	Tried bool
	// PayloadDigest is the hex SHA-256 of the first call's payload.
	PayloadDigest string
	// CreatedAt is when the first call was recorded.
	CreatedAt time.Time
	// UpdatedAt is when the state last changed.
	UpdatedAt time.Time
}

// Fences lists the fence rows of gid, or of every transaction when gid is
// empty, ordered by gid, resource and branch id. It serves invariant
// checks in tests; for reconciliation by time window use
// participant.ListRecords and participant.Reconcile.
func Fences(ctx context.Context, db *gorm.DB, gid string) ([]Fence, error) {
	recs, err := participant.ListRecords(ctx, db, participant.Query{GID: gid})
	if err != nil {
		return nil, fmt.Errorf("demo: list fences: %w", err)
	}
	out := make([]Fence, 0, len(recs))
	for _, r := range recs {
		f := Fence{
			GID: r.GID, BranchID: r.BranchID, State: string(r.State), Tried: r.Tried,
			PayloadDigest: r.PayloadDigest, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		}
		if p, err := ParsePayload(r.Payload); err == nil {
			f.Resource = p.Resource
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Fence) int {
		return cmp.Or(cmp.Compare(a.GID, b.GID), cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.BranchID, b.BranchID))
	})
	return out, nil
}

// closeRows closes rows and returns the iteration error, if any.
func closeRows(rows interface {
	Err() error
	Close() error
}) error {
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	return rows.Close()
}
