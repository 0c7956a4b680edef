// Package demo is Settle's demonstration participant: an account service
// that freezes money and an inventory service that reserves stock, each a
// real TCC participant (tccv1.ParticipantService) over its own database.
// The quickstart, the benchmark and the fault-injection suite run against
// it, and cmd/participant-demo wraps it in a binary.
//
// # Resources
//
// accounts (table demo_account, amounts in cents):
//
//	Try      frozen += amount, if balance - frozen >= amount
//	Confirm  balance -= amount, frozen -= amount; merchant.balance += amount
//	Cancel   frozen -= amount
//
// inventory (table demo_stock):
//
//	Try      reserved += qty, if stock - reserved >= qty
//	Confirm  stock -= qty, reserved -= qty, sold += qty
//	Cancel   reserved -= qty
//
// A payload is JSON naming its resource, built by AccountsPayload or
// InventoryPayload: {"resource":"accounts","user":"alice","amount":1500} or
// {"resource":"inventory","sku":"book","qty":1}. No column can go negative:
// every UPDATE is guarded and the tables carry CHECK constraints.
//
// # Fence
//
// Each call first writes the fence row demo_fence(resource, gid, branch_id)
// in the same local transaction as the business change, so the two commit
// or roll back together. The fence row is created by a plain INSERT whose
// duplicate-key error is the answer "already seen" (select-then-insert
// deadlocks under MySQL REPEATABLE READ when duplicates race), and it moves
// between states only by compare-and-set UPDATEs:
//
//	(none) --Try--> TRIED --Confirm--> CONFIRMED
//	   |              |
//	   |              +----Cancel----> CANCELLED
//	   +-----Cancel (null compensation)----^
//
// From this follow the rules of the protocol:
//   - a repeated Try, Confirm or Cancel returns the first result and
//     changes nothing;
//   - Cancel with no Try on record inserts CANCELLED and succeeds without a
//     business effect; a later Try finds CANCELLED and is refused
//     (anti-hanging);
//   - Confirm with no Try on record, Confirm after Cancel, Cancel after
//     Confirm, and any call whose payload digest differs from the recorded
//     one are refused with FAILED_PRECONDITION;
//   - a Try refused for business reasons rolls back with its fence row, so
//     a later Cancel is a null compensation.
//
// # Failure handling
//
// Local transactions are short and never span a network call. A MySQL
// deadlock (1213) or lock wait timeout (1205), or a busy SQLite, retries the
// local transaction a few times; other database errors become UNAVAILABLE,
// which the coordinator retries. Malformed payloads and ids are
// INVALID_ARGUMENT; SQL text never reaches a status message.
package demo
