package demo_test

import (
	"errors"
	"testing"

	"github.com/settle-tcc/settle/internal/demo"
)

func TestPayloadConstructors(t *testing.T) {
	t.Parallel()
	if got := string(demo.AccountsPayload("alice", 1500)); got != `{"resource":"accounts","user":"alice","amount":1500}` {
		t.Fatalf("AccountsPayload = %s", got)
	}
	if got := string(demo.InventoryPayload("book", 1)); got != `{"resource":"inventory","sku":"book","qty":1}` {
		t.Fatalf("InventoryPayload = %s", got)
	}
	p, err := demo.ParsePayload(demo.AccountsPayload("bob", 7))
	if err != nil || p != (demo.Payload{Resource: demo.Accounts, User: "bob", Amount: 7}) {
		t.Fatalf("ParsePayload = %+v, %v", p, err)
	}
	p, err = demo.ParsePayload(demo.InventoryPayload("pen", 3))
	if err != nil || p != (demo.Payload{Resource: demo.Inventory, SKU: "pen", Qty: 3}) {
		t.Fatalf("ParsePayload = %+v, %v", p, err)
	}
}

func TestParseResources(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []demo.Resource
		ok   bool
	}{
		{"accounts,inventory", []demo.Resource{demo.Accounts, demo.Inventory}, true},
		{" inventory ", []demo.Resource{demo.Inventory}, true},
		{"accounts,", []demo.Resource{demo.Accounts}, true},
		{"", nil, false},
		{"accounts,loyalty", nil, false},
	} {
		got, err := demo.ParseResources(tc.in)
		if (err == nil) != tc.ok || len(got) != len(tc.want) {
			t.Fatalf("ParseResources(%q) = %v, %v", tc.in, got, err)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("ParseResources(%q) = %v", tc.in, got)
			}
		}
	}
}

func TestPrice(t *testing.T) {
	t.Parallel()
	if p, ok := demo.Price("book"); !ok || p != 1500 {
		t.Fatalf("Price(book) = %d, %t", p, ok)
	}
	if p, ok := demo.Price("pen"); !ok || p != 200 {
		t.Fatalf("Price(pen) = %d, %t", p, ok)
	}
	if _, ok := demo.Price("lamp"); ok {
		t.Fatal("Price(lamp) found")
	}
}

// FuzzParsePayload checks that no input panics, that every rejection wraps
// ErrBadPayload, and that accepted payloads are within limits and
// round-trip through the constructors.
func FuzzParsePayload(f *testing.F) {
	f.Add(demo.AccountsPayload("alice", 1500))
	f.Add(demo.InventoryPayload("book", 1))
	f.Add([]byte(`{"resource":"accounts","user":"","amount":-1}`))
	f.Add([]byte(`{"resource":"inventory","sku":"x","qty":1e30}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := demo.ParsePayload(b)
		if err != nil {
			if !errors.Is(err, demo.ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
			return
		}
		var again []byte
		switch p.Resource {
		case demo.Accounts:
			if p.Amount <= 0 || p.Amount > demo.MaxAmount || p.User == "" {
				t.Fatalf("accepted out-of-range %+v", p)
			}
			again = demo.AccountsPayload(p.User, p.Amount)
		case demo.Inventory:
			if p.Qty <= 0 || p.Qty > demo.MaxQty || p.SKU == "" {
				t.Fatalf("accepted out-of-range %+v", p)
			}
			again = demo.InventoryPayload(p.SKU, p.Qty)
		default:
			t.Fatalf("accepted resource %q", p.Resource)
		}
		q, err := demo.ParsePayload(again)
		if err != nil || q != p {
			t.Fatalf("round trip of %+v: %+v, %v", p, q, err)
		}
	})
}
