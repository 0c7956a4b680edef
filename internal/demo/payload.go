package demo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Limits on payload values, so that no sum can overflow a BIGINT.
const (
	// MaxAmount is the largest amount in cents one accounts branch may move.
	MaxAmount = 100_000_000_000
	// MaxQty is the largest quantity one inventory branch may reserve.
	MaxQty = 1_000_000
	// maxName is the longest user name or sku (the key columns' width).
	maxName = 64
)

// ErrBadPayload is wrapped by every payload validation error.
var ErrBadPayload = errors.New("demo: bad payload")

// Payload is the business content of a branch, carried as JSON in the
// Try, Confirm and Cancel requests.
type Payload struct {
	// Resource selects the resource the branch is for.
	Resource Resource `json:"resource"`
	// User is the paying account (accounts).
	User string `json:"user,omitempty"`
	// Amount is the price in cents (accounts).
	Amount int64 `json:"amount,omitempty"`
	// SKU is the item (inventory).
	SKU string `json:"sku,omitempty"`
	// Qty is the quantity (inventory).
	Qty int64 `json:"qty,omitempty"`
}

// AccountsPayload returns the payload of an accounts branch that charges
// user amount cents.
func AccountsPayload(user string, amount int64) []byte {
	return mustJSON(Payload{Resource: Accounts, User: user, Amount: amount})
}

// InventoryPayload returns the payload of an inventory branch that takes qty
// units of sku.
func InventoryPayload(sku string, qty int64) []byte {
	return mustJSON(Payload{Resource: Inventory, SKU: sku, Qty: qty})
}

func mustJSON(p Payload) []byte {
	// A struct of strings and integers always marshals.
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("demo: marshal payload: %v", err))
	}
	return b
}

// ParsePayload decodes and validates a payload. Errors wrap ErrBadPayload.
func ParsePayload(b []byte) (Payload, error) {
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Payload{}, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if dec.More() {
		return Payload{}, fmt.Errorf("%w: trailing data after JSON object", ErrBadPayload)
	}
	switch p.Resource {
	case Accounts:
		if err := checkName("user", p.User); err != nil {
			return Payload{}, err
		}
		if p.Amount <= 0 || p.Amount > MaxAmount {
			return Payload{}, fmt.Errorf("%w: amount %d out of range 1..%d", ErrBadPayload, p.Amount, int64(MaxAmount))
		}
		if p.SKU != "" || p.Qty != 0 {
			return Payload{}, fmt.Errorf("%w: accounts payload with sku or qty", ErrBadPayload)
		}
	case Inventory:
		if err := checkName("sku", p.SKU); err != nil {
			return Payload{}, err
		}
		if p.Qty <= 0 || p.Qty > MaxQty {
			return Payload{}, fmt.Errorf("%w: qty %d out of range 1..%d", ErrBadPayload, p.Qty, MaxQty)
		}
		if p.User != "" || p.Amount != 0 {
			return Payload{}, fmt.Errorf("%w: inventory payload with user or amount", ErrBadPayload)
		}
	case "":
		return Payload{}, fmt.Errorf("%w: missing resource", ErrBadPayload)
	default:
		return Payload{}, fmt.Errorf("%w: unknown resource %q", ErrBadPayload, p.Resource)
	}
	return p, nil
}

func checkName(field, v string) error {
	if v == "" || len(v) > maxName {
		return fmt.Errorf("%w: %s must be 1..%d bytes", ErrBadPayload, field, maxName)
	}
	return nil
}
