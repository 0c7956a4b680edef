package demo

import (
	"fmt"
	"strings"
)

// Resource names one of the demo's resources. It is also the "resource"
// field of a payload and part of the fence key.
type Resource string

// The demo's resources.
const (
	// Accounts freezes and moves money between accounts.
	Accounts Resource = "accounts"
	// Inventory reserves and sells stock.
	Inventory Resource = "inventory"
)

// AllResources lists every resource, in a fixed order.
func AllResources() []Resource { return []Resource{Accounts, Inventory} }

// ParseResources parses a comma-separated list such as
// "accounts,inventory". Blank entries are ignored; duplicates are allowed.
func ParseResources(s string) ([]Resource, error) {
	var out []Resource
	for _, part := range strings.Split(s, ",") {
		switch r := Resource(strings.TrimSpace(part)); r {
		case "":
		case Accounts, Inventory:
			out = append(out, r)
		default:
			return nil, fmt.Errorf("demo: unknown resource %q (want accounts, inventory)", r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("demo: no resources in %q", s)
	}
	return out, nil
}

// MerchantAccount is the account that Confirm credits with the money it
// takes from the payer.
const MerchantAccount = "merchant"

// Item is a product of the demo shop.
type Item struct {
	// SKU identifies the item (the primary key of demo_stock).
	SKU string
	// Price is the unit price in cents.
	Price int64
	// InitialStock is the stock Seed gives it.
	InitialStock int64
}

// AccountSeed is an account Seed creates.
type AccountSeed struct {
	// Name is the account name (the primary key of demo_account).
	Name string
	// Balance is the initial balance in cents.
	Balance int64
}

var catalog = []Item{
	{SKU: "book", Price: 1500, InitialStock: 10},
	{SKU: "pen", Price: 200, InitialStock: 100},
}

var seedAccounts = []AccountSeed{
	{Name: "alice", Balance: 10000},
	{Name: "bob", Balance: 500},
	{Name: MerchantAccount, Balance: 0},
}

// Catalog returns the shop's items.
func Catalog() []Item { return append([]Item(nil), catalog...) }

// SeedAccounts returns the accounts Seed creates.
func SeedAccounts() []AccountSeed { return append([]AccountSeed(nil), seedAccounts...) }

// Price returns the unit price of sku in cents, and false for an unknown sku.
func Price(sku string) (int64, bool) {
	for _, it := range catalog {
		if it.SKU == sku {
			return it.Price, true
		}
	}
	return 0, false
}
