// Package client is Settle's initiator SDK: it begins a global TCC
// transaction on the coordinator, registers and tries branches on
// participants, and asks the coordinator to commit or roll back.
//
// # Overview
//
// A Client holds one gRPC connection to the coordinator and one, created on
// first use and then shared, per participant target. It is safe for
// concurrent use and should be long-lived.
//
//	c, err := client.New("127.0.0.1:7400")
//	...
//	txn, err := c.Run(ctx, client.BeginOptions{GID: orderID}, func(ctx context.Context, tx *client.Txn) error {
//		if err := tx.Try(ctx, "pay", "payments:7501", payPayload); err != nil {
//			return err
//		}
//		return tx.Try(ctx, "stock", "inventory:7501", stockPayload)
//	})
//
// Txn.Try registers the branch with the coordinator before it calls the
// participant, so that the coordinator can always cancel whatever may have
// been tried. The participant receives the gid and branch id in the request
// and also as gRPC metadata (MetadataGID, MetadataBranchID); the caller's
// context deadline travels with every call.
//
// # Errors
//
// Errors from the coordinator and from participants are gRPC status errors,
// wrapped with what the SDK was doing ("client: try branch pay of g1: ...").
// status.Code and status.FromError see through the wrapping, so callers
// branch on the code: FailedPrecondition from a participant's Try is a
// business refusal (insufficient funds), while DeadlineExceeded or
// Unavailable mean the outcome is unknown. Either way the right answer is
// to roll back; the coordinator then cancels every registered branch, and a
// participant that never saw the Try records a null compensation.
//
// # Retries
//
// Every coordinator call and every participant Try is idempotent, so the
// SDK configures gRPC to retry calls that fail with Unavailable a few times,
// with exponential backoff, and coordinator calls refused with
// ResourceExhausted (the coordinator shed them before doing anything) too,
// after the pause the coordinator suggests. Retries stop while most calls
// fail (gRPC retry throttling), so an overloaded coordinator is not
// flooded by retries. A call still refused after its retries returns
// ResourceExhausted: the transaction's outcome is known not to have
// changed by it.
// When BeginOptions.GID is empty the SDK generates the gid itself (a UUIDv7)
// so that a retried Begin cannot start a second transaction.
package client
