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
// The demo is built on the participant SDK (package participant), which
// is where the fence lives: each call runs the handler of this package in
// one local transaction together with the SDK's fence row (gid,
// branch_id) in participant.DefaultTable, in the same database. From the
// SDK follow the rules of the protocol:
//   - a repeated Try, Confirm or Cancel returns the first result and
//     changes nothing;
//   - Cancel with no Try on record records a null compensation and
//     succeeds without a business effect; a later Try is refused
//     (anti-hanging);
//   - Confirm with no Try on record, Confirm after Cancel, Cancel after
//     Confirm, and any call whose payload digest differs from the recorded
//     one are refused with FAILED_PRECONDITION;
//   - a Try refused for business reasons (ErrInsufficientFunds,
//     ErrInsufficientStock, ...) rolls back with its fence row, so a later
//     Cancel is a null compensation.
//
// cmd/participant-demo also runs the SDK's check-back worker when given a
// coordinator, so a reservation whose Confirm or Cancel never arrives is
// settled by asking the coordinator.
//
// # Failure handling
//
// Local transactions are short and never span a network call. The SDK
// retries a MySQL deadlock (1213) or lock wait timeout (1205), or a busy
// SQLite, a few times; other database errors become UNAVAILABLE, which the
// coordinator retries. A missing reservation under a TRIED fence row is a
// broken invariant, answered with INTERNAL. Malformed payloads and ids are
// INVALID_ARGUMENT; SQL text never reaches a status message.
package demo
