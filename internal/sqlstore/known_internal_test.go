package sqlstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/settle-tcc/settle/internal/tcc"
)

// TestKnownRecordsBounded: the remembered records never exceed maxKnown;
// when full, those past their deadline make room, and without any the
// new record is simply not remembered.
func TestKnownRecordsBounded(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var k knownRecords
	for i := 0; i < maxKnown; i++ {
		deadline := now.Add(time.Minute)
		if i%2 == 0 {
			deadline = now.Add(-time.Second)
		}
		k.put(&tcc.Transaction{GID: fmt.Sprintf("g%d", i), Deadline: deadline}, now.Add(-time.Hour))
	}
	if len(k.m) != maxKnown {
		t.Fatalf("%d remembered, want %d", len(k.m), maxKnown)
	}
	k.put(&tcc.Transaction{GID: "new", Deadline: now.Add(time.Minute)}, now)
	if len(k.m) != maxKnown/2+1 || k.take("new") == nil || k.take("g0") != nil || k.take("g1") == nil {
		t.Fatalf("after a sweep: %d remembered, want the %d live ones and the new one", len(k.m), maxKnown/2)
	}
	for i := 0; len(k.m) < maxKnown; i++ {
		k.put(&tcc.Transaction{GID: fmt.Sprintf("live%d", i), Deadline: now.Add(time.Minute)}, now)
	}
	k.put(&tcc.Transaction{GID: "extra", Deadline: now.Add(time.Minute)}, now)
	if len(k.m) != maxKnown || k.take("extra") != nil {
		t.Fatalf("full of live records: %d remembered, extra remembered too", len(k.m))
	}
}

// TestKnownRecordsBytesBounded: big payloads are bounded by bytes, not
// only by count, and the byte count follows puts, takes and sweeps.
func TestKnownRecordsBytesBounded(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	big := func(gid string, deadline time.Time) *tcc.Transaction {
		return &tcc.Transaction{GID: gid, Deadline: deadline,
			Branches: []tcc.Branch{{BranchID: "a", Payload: make([]byte, 1<<20)}}}
	}
	var k knownRecords
	for i := 0; i < 100; i++ {
		k.put(big(fmt.Sprintf("old%d", i), now.Add(-time.Second)), now.Add(-time.Hour))
	}
	if k.bytes > maxKnownBytes || len(k.m) >= 64 || len(k.m) < 60 {
		t.Fatalf("%d records, %d bytes remembered; want about 63 and at most %d bytes", len(k.m), k.bytes, maxKnownBytes)
	}
	k.put(big("live", now.Add(time.Minute)), now)
	if len(k.m) != 1 || k.take("live") == nil || k.bytes != 0 {
		t.Fatalf("after a sweep and a take: %d records, %d bytes", len(k.m), k.bytes)
	}
	k.put(&tcc.Transaction{GID: "huge", Branches: []tcc.Branch{{Payload: make([]byte, maxKnownBytes)}}}, now)
	if k.take("huge") != nil {
		t.Fatal("a record larger than the whole bound was remembered")
	}
	k.put(big("twice", now.Add(time.Minute)), now)
	one := k.bytes
	k.put(big("twice", now.Add(time.Minute)), now)
	if k.bytes != one || len(k.m) != 1 {
		t.Fatalf("putting a record again counted it twice: %d bytes, want %d", k.bytes, one)
	}
}
