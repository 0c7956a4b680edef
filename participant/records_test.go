package participant_test

import (
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/settle-tcc/settle/internal/dbtest"
	"github.com/settle-tcc/settle/internal/grpctest"
	"github.com/settle-tcc/settle/participant"
)

func TestRecordsWindow(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec)
		t0 := e.clock.Now()
		grpctest.WantCode(t, e.try(t, "g1", "b1", "1"), codes.OK, "")
		e.clock.Advance(time.Hour)
		grpctest.WantCode(t, e.cancel(t, "g2", "b1", "1"), codes.OK, "")
		e.clock.Advance(time.Hour)
		grpctest.WantCode(t, e.try(t, "g3", "b1", "1"), codes.OK, "")
		grpctest.WantCode(t, e.confirm(t, "g3", "b1", "1"), codes.OK, "")

		rs, err := participant.ListRecords(ctxT(t), e.db, participant.Query{From: t0.Add(30 * time.Minute), To: t0.Add(90 * time.Minute)})
		if err != nil || len(rs) != 1 || rs[0].GID != "g2" || rs[0].State != participant.StateCancelled || rs[0].Tried {
			t.Fatalf("window = %+v, %v; want g2's null compensation", rs, err)
		}
		if !rs[0].CreatedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("CreatedAt = %v, want %v", rs[0].CreatedAt, t0.Add(time.Hour))
		}
		rs, err = e.p.Records(ctxT(t), participant.Query{From: t0})
		if err != nil || len(rs) != 3 || rs[0].GID != "g1" || rs[2].GID != "g3" {
			t.Fatalf("all = %+v, %v", rs, err)
		}
		rs, err = e.p.Records(ctxT(t), participant.Query{State: participant.StateTried})
		if err != nil || len(rs) != 1 || rs[0].GID != "g1" {
			t.Fatalf("tried = %+v, %v", rs, err)
		}
		if rs[0].NextCheckAt != rs[0].CreatedAt.Add(30*time.Second) {
			t.Fatalf("NextCheckAt = %v, want CreatedAt+30s", rs[0].NextCheckAt)
		}
	})
}

func TestPurgeKeepsTriedAndRecentRows(t *testing.T) {
	t.Parallel()
	dbtest.ForEach(t, func(t *testing.T, spec string) {
		t.Parallel()
		e := setup(t, spec, func(c *participant.Config) { c.Retention = 2 * time.Hour })
		grpctest.WantCode(t, e.try(t, "old-tried", "b1", "1"), codes.OK, "")
		grpctest.WantCode(t, e.try(t, "old-confirmed", "b1", "1"), codes.OK, "")
		grpctest.WantCode(t, e.confirm(t, "old-confirmed", "b1", "1"), codes.OK, "")
		grpctest.WantCode(t, e.cancel(t, "old-cancelled", "b1", "1"), codes.OK, "")
		e.clock.Advance(90 * time.Minute)
		grpctest.WantCode(t, e.cancel(t, "new-cancelled", "b1", "1"), codes.OK, "")
		if n, err := e.p.Purge(ctxT(t)); err != nil || n != 0 {
			t.Fatalf("Purge inside retention = %d, %v", n, err)
		}
		e.clock.Advance(time.Hour) // old rows are 2.5h old, the new one 1h
		n, err := e.p.Purge(ctxT(t))
		if err != nil || n != 2 {
			t.Fatalf("Purge = %d, %v; want 2", n, err)
		}
		rs, _ := e.p.Records(ctxT(t), participant.Query{})
		got := map[string]bool{}
		for _, r := range rs {
			got[r.GID] = true
		}
		if len(got) != 2 || !got["old-tried"] || !got["new-cancelled"] {
			t.Fatalf("left %v, want old-tried and new-cancelled", got)
		}
		// While its row exists a late Try is still refused.
		grpctest.WantCode(t, e.try(t, "new-cancelled", "b1", "1"), codes.FailedPrecondition, "try after cancel")
	})
}

// More rows than one purge batch.
func TestPurgeBatches(t *testing.T) {
	t.Parallel()
	e := setup(t, dbtest.NewSQLite(t), func(c *participant.Config) { c.Retention = time.Hour })
	for i := range 1203 {
		if _, err := e.p.Apply(ctxT(t), participant.PhaseCancel, participant.Request{GID: "g" + strconv.Itoa(i), BranchID: "b", Payload: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(2 * time.Hour)
	if n, err := e.p.Purge(ctxT(t)); err != nil || n != 1203 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
}
