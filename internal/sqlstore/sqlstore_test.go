package sqlstore_test

import (
	"context"
	"testing"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/sqlstore"
	"github.com/settle-tcc/settle/internal/tcc"
	"github.com/settle-tcc/settle/internal/tcc/storetest"
)

func TestStoreContract(t *testing.T) {
	for _, b := range dbtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) tcc.Store {
				s, err := sqlstore.Open(context.Background(), b.New(t))
				if err != nil {
					t.Fatalf("open store: %v", err)
				}
				return s
			})
		})
	}
}

func TestMigrateTwice(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		for i := 0; i < 2; i++ {
			s, err := sqlstore.Open(context.Background(), spec)
			if err != nil {
				t.Fatalf("open %d: %v", i, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
