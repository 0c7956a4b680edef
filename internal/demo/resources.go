package demo

import (
	"database/sql"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	"github.com/settle-tcc/settle/participant"
)

// Refusals. The participant SDK answers each with FAILED_PRECONDITION,
// which the coordinator never retries.
var (
	// ErrInsufficientFunds: the payer's available balance is too low.
	ErrInsufficientFunds = participant.Refusal("insufficient funds")
	// ErrInsufficientStock: not enough unreserved stock.
	ErrInsufficientStock = participant.Refusal("insufficient stock")
	// ErrUnknownAccount: no account with that name.
	ErrUnknownAccount = participant.Refusal("unknown account")
	// ErrUnknownSKU: no item with that sku.
	ErrUnknownSKU = participant.Refusal("unknown sku")
)

// The fence's refusals, answered by the participant SDK; kept here so
// users of this package need not import it.
var (
	// ErrTryAfterCancel: the branch was cancelled before its Try arrived
	// (anti-hanging).
	ErrTryAfterCancel = participant.ErrTryAfterCancel
	// ErrConfirmWithoutTry: Confirm for a branch with no Try on record.
	ErrConfirmWithoutTry = participant.ErrConfirmWithoutTry
	// ErrConflict: Confirm after Cancel or Cancel after Confirm.
	ErrConflict = participant.ErrConflict
	// ErrPayloadMismatch: a call repeated with a payload that differs from
	// the one on record (parameter snapshot).
	ErrPayloadMismatch = participant.ErrPayloadMismatch
)

// errBroken reports a violated invariant (a TRIED fence row whose
// reservation is missing). It rolls the local transaction back and is
// answered with INTERNAL, so the coordinator retries and flags it.
var errBroken = status.Error(codes.Internal, "internal error: reservation missing for a tried branch")

// op is one of the three TCC phases.
type op string

const (
	opTry     op = "try"
	opConfirm op = "confirm"
	opCancel  op = "cancel"
)

// apply runs the business half of o for p inside tx.
func apply(tx *gorm.DB, o op, p Payload) error {
	switch p.Resource {
	case Accounts:
		switch o {
		case opTry:
			return tryAccounts(tx, p)
		case opConfirm:
			return confirmAccounts(tx, p)
		case opCancel:
			return cancelAccounts(tx, p)
		}
	case Inventory:
		switch o {
		case opTry:
			return tryInventory(tx, p)
		case opConfirm:
			return confirmInventory(tx, p)
		case opCancel:
			return cancelInventory(tx, p)
		}
	}
	return fmt.Errorf("demo: no %s for resource %q", o, p.Resource)
}

// exec runs a guarded UPDATE and reports whether it changed exactly one row.
func exec(tx *gorm.DB, query string, args ...any) (bool, error) {
	res := tx.Exec(query, args...)
	if res.Error != nil {
		return false, res.Error
	}
	return res.RowsAffected == 1, nil
}

func tryAccounts(tx *gorm.DB, p Payload) error {
	ok, err := exec(tx, "UPDATE demo_account SET frozen = frozen + ? WHERE name = ? AND balance - frozen >= ?", p.Amount, p.User, p.Amount)
	if err != nil || ok {
		return err
	}
	var available int64
	err = tx.Raw("SELECT balance - frozen FROM demo_account WHERE name = ?", p.User).Row().Scan(&available)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w %q", ErrUnknownAccount, p.User)
	case err != nil:
		return err
	}
	return fmt.Errorf("%w: %s has %d cents available, needs %d", ErrInsufficientFunds, p.User, available, p.Amount)
}

func confirmAccounts(tx *gorm.DB, p Payload) error {
	ok, err := exec(tx, "UPDATE demo_account SET balance = balance - ?, frozen = frozen - ? WHERE name = ? AND frozen >= ? AND balance >= ?",
		p.Amount, p.Amount, p.User, p.Amount, p.Amount)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: account %q", errBroken, p.User)
	}
	ok, err = exec(tx, "UPDATE demo_account SET balance = balance + ? WHERE name = ?", p.Amount, MerchantAccount)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: merchant account %q is missing", errBroken, MerchantAccount)
	}
	return nil
}

func cancelAccounts(tx *gorm.DB, p Payload) error {
	ok, err := exec(tx, "UPDATE demo_account SET frozen = frozen - ? WHERE name = ? AND frozen >= ?", p.Amount, p.User, p.Amount)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: account %q", errBroken, p.User)
	}
	return nil
}

func tryInventory(tx *gorm.DB, p Payload) error {
	ok, err := exec(tx, "UPDATE demo_stock SET reserved = reserved + ? WHERE sku = ? AND stock - reserved >= ?", p.Qty, p.SKU, p.Qty)
	if err != nil || ok {
		return err
	}
	var available int64
	err = tx.Raw("SELECT stock - reserved FROM demo_stock WHERE sku = ?", p.SKU).Row().Scan(&available)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w %q", ErrUnknownSKU, p.SKU)
	case err != nil:
		return err
	}
	return fmt.Errorf("%w: %d %s available, needs %d", ErrInsufficientStock, available, p.SKU, p.Qty)
}

func confirmInventory(tx *gorm.DB, p Payload) error {
	ok, err := exec(tx, "UPDATE demo_stock SET stock = stock - ?, reserved = reserved - ?, sold = sold + ? WHERE sku = ? AND reserved >= ? AND stock >= ?",
		p.Qty, p.Qty, p.Qty, p.SKU, p.Qty, p.Qty)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: sku %q", errBroken, p.SKU)
	}
	return nil
}

func cancelInventory(tx *gorm.DB, p Payload) error {
	ok, err := exec(tx, "UPDATE demo_stock SET reserved = reserved - ? WHERE sku = ? AND reserved >= ?", p.Qty, p.SKU, p.Qty)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: sku %q", errBroken, p.SKU)
	}
	return nil
}
