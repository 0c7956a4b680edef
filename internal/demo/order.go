package demo

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"

	"github.com/settle-tcc/settle/client"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// Branch ids of an order's two branches.
const (
	BranchAccounts  = "accounts"
	BranchInventory = "inventory"
)

// Order is a purchase: user pays Price(SKU)*Qty to the merchant and takes
// Qty units of SKU, all or nothing.
type Order struct {
	// GID is the transaction id; empty lets the SDK generate one.
	GID string
	// User is the paying account.
	User string
	// SKU is the item bought.
	SKU string
	// Qty is the number of units.
	Qty int64
	// Participant is the gRPC target serving both demo resources.
	Participant string
	// Timeout is the transaction's timeout; zero means the coordinator's
	// default.
	Timeout time.Duration
	// RollbackTimeout bounds the rollback after a failed Try, which runs
	// even when ctx is done. Zero means 10s.
	RollbackTimeout time.Duration
	// Local, if set, commits through the order service's own database
	// (a demo_order row and the decision row in one local transaction)
	// with its decider named at Begin.
	Local *Local
}

// OrderResult is the outcome of PlaceOrder.
type OrderResult struct {
	// GID is the transaction id.
	GID string
	// Committed is true when the coordinator decided commit.
	Committed bool
	// Reason explains a rollback: the branch and the participant's refusal.
	Reason string
	// Transaction is the coordinator's view after the decision (and, as
	// PlaceOrder waits, after the first round of Confirm or Cancel).
	Transaction *tccv1.Transaction
}

// PlaceOrder runs an order as a TCC transaction through c: Begin with both
// branches registered, Try the accounts branch (freeze the price), Try the
// inventory branch (reserve the stock), then Commit if both succeeded. If a
// participant refuses a Try for a business reason it rolls back and returns
// Committed=false with the reason and a nil error. Any other failure is
// rolled back too and returned as an error (with the result's GID set once
// the transaction exists).
func PlaceOrder(ctx context.Context, c *client.Client, o Order) (OrderResult, error) {
	price, ok := Price(o.SKU)
	if !ok {
		return OrderResult{}, fmt.Errorf("%w %q", ErrUnknownSKU, o.SKU)
	}
	if o.Qty <= 0 || o.Qty > MaxQty {
		return OrderResult{}, fmt.Errorf("%w: qty %d out of range 1..%d", ErrBadPayload, o.Qty, MaxQty)
	}
	if err := checkName("user", o.User); err != nil {
		return OrderResult{}, err
	}
	amount := price * o.Qty
	if amount > MaxAmount {
		return OrderResult{}, fmt.Errorf("%w: amount %d over %d", ErrBadPayload, amount, int64(MaxAmount))
	}
	// Both branches are known up front, so they are registered with Begin
	// (one call and one database write instead of three); Try then only
	// calls the participant. If the first Try is refused, the rollback
	// also cancels the second branch, which its participant records as a
	// null compensation.
	branches := []client.Branch{
		{ID: BranchAccounts, Participant: o.Participant, Payload: AccountsPayload(o.User, amount)},
		{ID: BranchInventory, Participant: o.Participant, Payload: InventoryPayload(o.SKU, o.Qty)},
	}
	begin := client.BeginOptions{
		GID:      o.GID,
		Timeout:  o.Timeout,
		Labels:   map[string]string{"user": o.User, "sku": o.SKU, "qty": strconv.FormatInt(o.Qty, 10)},
		Branches: branches,
	}
	if o.Local != nil {
		begin.Decider = o.Local.Decider
	}
	tx, err := c.Begin(ctx, begin)
	if err != nil {
		return OrderResult{GID: o.GID}, err
	}
	res := OrderResult{GID: tx.GID()}
	for _, b := range branches {
		tryErr := tx.Try(ctx, b.ID, b.Participant, b.Payload)
		if tryErr == nil {
			continue
		}
		msg, refused := client.Refusal(tryErr)
		if refused {
			res.Reason = b.ID + ": " + msg
		} else {
			res.Reason = b.ID + ": " + tryErr.Error()
		}
		// Roll back even if ctx is done: the coordinator must cancel what
		// may have been tried.
		timeout := o.RollbackTimeout
		if timeout <= 0 {
			timeout = client.DefaultRollbackTimeout
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		txn, rbErr := tx.Rollback(rctx, res.Reason, true)
		cancel()
		res.Transaction = txn
		switch {
		case rbErr != nil:
			return res, fmt.Errorf("demo: order %s: %w (rollback failed: %w)", res.GID, tryErr, rbErr)
		case refused:
			return res, nil
		default:
			return res, fmt.Errorf("demo: order %s rolled back: %w", res.GID, tryErr)
		}
	}
	var txn *tccv1.Transaction
	if o.Local != nil {
		// The order row and the decision row commit together, or neither.
		placed := PlacedOrder{GID: res.GID, User: o.User, SKU: o.SKU, Qty: o.Qty, Amount: amount}
		txn, err = tx.CommitLocal(ctx, o.Local.DB, func(db *gorm.DB) error { return InsertOrder(db, placed) })
	} else {
		txn, err = tx.Commit(ctx, true)
	}
	if err != nil {
		return res, fmt.Errorf("demo: order %s: %w", res.GID, err)
	}
	res.Committed = true
	res.Transaction = txn
	return res, nil
}
