package tcc

import "context"

// DeliverForTest runs one delivery round of tx as the coordinator's own
// rounds do (tests of the round's guards).
func DeliverForTest(c *Coordinator, ctx context.Context, tx *Transaction) error {
	return c.deliver(ctx, tx)
}
