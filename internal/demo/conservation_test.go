package demo_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/settle-tcc/settle/client"
	"github.com/settle-tcc/settle/internal/app"
	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/demo"
)

// TestOrderConservation places 1,000 random orders through a real
// coordinator on loopback against the demo participant. Many Tries are
// refused (bob's small balance, unknown accounts, stock running out), so
// many orders roll back after one branch froze or reserved something. Once
// every transaction is finished (-short places 200), money and stock counted with reservations
// are unchanged, nothing stays frozen or reserved, and the effects equal
// exactly the committed orders (at most once).
func TestOrderConservation(t *testing.T) {
	t.Parallel()
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, be.New(t))
			for _, q := range []string{
				"UPDATE demo_account SET balance = 300000 WHERE name = 'alice'",
				"UPDATE demo_stock SET stock = 400 WHERE sku = 'book'",
			} {
				if err := e.db.Exec(q).Error; err != nil {
					t.Fatal(err)
				}
			}
			a, err := app.Start(context.Background(), app.Config{Listen: "127.0.0.1:0", DB: be.New(t)}, nil)
			if err != nil {
				t.Fatalf("start coordinator: %v", err)
			}
			t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
			c, err := client.New(a.Addr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })

			before := e.totals(t)
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 7))
			users := []string{"alice", "alice", "bob", "nobody"}
			skus := []string{"book", "pen"}
			n := 1000
			if testing.Short() {
				n = 200
			}
			orders := make([]demo.Order, n)
			for i := range orders {
				orders[i] = demo.Order{
					GID:         fmt.Sprintf("order-%04d", i),
					User:        users[rng.IntN(len(users))],
					SKU:         skus[rng.IntN(len(skus))],
					Qty:         1 + rng.Int64N(3),
					Participant: e.addr,
					Timeout:     time.Minute,
				}
			}
			committed := make([]bool, n)
			work := make(chan int)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for i := range work {
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						res, err := demo.PlaceOrder(ctx, c, orders[i])
						cancel()
						if err != nil {
							t.Errorf("%s: %v", orders[i].GID, err)
							continue
						}
						committed[i] = res.Committed
					}
				})
			}
			for i := range orders {
				work <- i
			}
			close(work)
			wg.Wait()
			if t.Failed() {
				return
			}

			// Wait (bounded) until the coordinator has finished every
			// transaction, i.e. nothing is frozen or reserved any more.
			deadline := time.Now().Add(30 * time.Second)
			after := e.totals(t)
			for after.Frozen != 0 || after.Reserved != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("reservations left: frozen %d reserved %d", after.Frozen, after.Reserved)
				}
				time.Sleep(20 * time.Millisecond)
				after = e.totals(t)
			}
			if after.Balance != before.Balance {
				t.Fatalf("money %d, want %d", after.Balance, before.Balance)
			}
			for sku, g := range before.Goods {
				if after.Goods[sku] != g {
					t.Fatalf("goods %s = %d, want %d", sku, after.Goods[sku], g)
				}
			}

			paid := map[string]int64{}
			sold := map[string]int64{}
			var merchantIn int64
			ok := 0
			for i, o := range orders {
				if !committed[i] {
					continue
				}
				ok++
				price, _ := demo.Price(o.SKU)
				paid[o.User] += price * o.Qty
				merchantIn += price * o.Qty
				sold[o.SKU] += o.Qty
			}
			if ok == 0 || ok == n {
				t.Fatalf("%d of %d orders committed; want a mix", ok, n)
			}
			t.Logf("%d of %d orders committed", ok, n)
			wantEffects(t, before, after, paid, merchantIn, sold)
		})
	}
}
