// Package participant lets a service take part in Settle TCC transactions
// by writing only its business logic. It implements
// settle.tcc.v1.ParticipantService (Try, Confirm, Cancel) on top of three
// handlers that receive the request and a *gorm.DB transaction, and makes
// them idempotent and safe against calls that repeat, race or arrive out of
// order.
//
// # Overview
//
//	db, _ := gorm.Open(...)                       // MySQL/MariaDB, PostgreSQL or SQLite
//	_ = participant.Migrate(ctx, db)              // the fence table, same database as the business tables
//	p, _ := participant.New(participant.Config{
//		DB:      db,
//		Try:     func(ctx context.Context, tx *gorm.DB, r participant.Request) error { /* reserve */ },
//		Confirm: func(ctx context.Context, tx *gorm.DB, r participant.Request) error { /* make real */ },
//		Cancel:  func(ctx context.Context, tx *gorm.DB, r participant.Request) error { /* release */ },
//	})
//	tccv1.RegisterParticipantServiceServer(grpcServer, p)
//	chk, _ := p.NewChecker(participant.CheckerConfig{Coordinator: tccv1.NewCoordinatorServiceClient(conn)})
//	go chk.Run(ctx)                               // check-back and purge
//
// Every call runs its handler in one local database transaction together
// with a fence row keyed by (gid, branch_id) in the fence table
// (DefaultTable, DDL in MySQLSchema, PostgresSchema and SQLiteSchema). The fence must live
// in the same database as the data the handlers change: the two commit or
// roll back together, and only changes made through the handler's tx are
// protected.
//
// # State model
//
// A fence row is created by a plain INSERT whose duplicate-key error is
// the answer "already seen" (never select-then-insert, which deadlocks
// under MySQL's REPEATABLE READ when duplicates race; on PostgreSQL the
// INSERT says ON CONFLICT DO NOTHING and "no row inserted" is the answer,
// because an error there aborts the whole local transaction), and changes state
// only by compare-and-set UPDATEs (WHERE state = 'TRIED' AND payload_digest
// = ?):
//
//	(none) --Try--> TRIED --Confirm--> CONFIRMED
//	   |              |
//	   |              +----Cancel----> CANCELLED
//	   +-----Cancel (null compensation)----^
//
// From this follow the rules of the protocol:
//   - a repeated Try, Confirm or Cancel returns the first result and does
//     not run its handler again;
//   - Cancel with no Try on record inserts CANCELLED (tried = 0) and
//     succeeds without running the Cancel handler (null compensation);
//   - Try after Cancel is refused with FAILED_PRECONDITION
//     (ErrTryAfterCancel, anti-hanging) and its handler is not run;
//   - Confirm after Cancel and Cancel after Confirm are refused with
//     FAILED_PRECONDITION (ErrConflict), which the coordinator reports as a
//     conflict for an operator; Confirm with no Try is refused the same way
//     (ErrConfirmWithoutTry);
//   - any call whose payload's SHA-256 differs from the first call's is
//     refused with FAILED_PRECONDITION (ErrPayloadMismatch);
//   - a Try whose handler fails rolls back with its fence row, so the
//     coordinator's later Cancel is a null compensation.
//
// Concurrent duplicates (many goroutines or many instances) are serialised
// by the primary key and row locks of the database, not by in-process
// locks. Deadlocks, lock wait timeouts and serialization failures (MySQL
// 1213/1205; PostgreSQL 40P01, 55P03, 40001; SQLite busy) rerun the local
// transaction a bounded number of times with jittered backoff.
//
// On PostgreSQL a statement that fails inside the handler's transaction
// aborts all of it: a handler that catches an error (a duplicate key of
// its own, say) and goes on makes the call fail with nothing committed.
// Put such a statement in a savepoint (tx.SavePoint, tx.RollbackTo) or use
// INSERT ... ON CONFLICT DO NOTHING.
//
// # Check-back
//
// A row that stays TRIED past Config.CheckBackAfter is due. The Checker
// claims due rows with a compare-and-set on next_check_us (so several
// instances do not ask twice), calls the coordinator's CheckBack with no
// transaction open, and applies VERDICT_CONFIRM or VERDICT_CANCEL through
// Apply, i.e. the same handlers and fence as a gRPC call. VERDICT_PENDING
// reschedules the row after retry_after; a failed call reschedules it with
// exponential backoff. A coordinator that has never heard of the gid
// presumes abort and answers VERDICT_CANCEL, so no reservation is orphaned.
//
// # Retention and reconciliation
//
// Purge deletes CONFIRMED and CANCELLED rows older than Config.Retention
// (default 7 days, at least MinRetention); TRIED rows are never purged. The
// retention must exceed the longest time a duplicate can still arrive: the
// transaction timeout plus transport deadlines plus the coordinator's retry
// horizon. A CANCELLED row purged too early would let a very late Try
// through. ListRecords lists fence records for a time window and Reconcile
// compares them with the coordinator's GetTransaction answers.
//
// # Failure handling
//
// Local transactions are short and never span a network call. Validation
// failures (ids, Config.CheckRequest) are INVALID_ARGUMENT and record
// nothing. Business refusals (ErrRefused, see Refusal) and the fence's
// refusals are FAILED_PRECONDITION, which the coordinator never retries.
// Database errors and unclassified handler errors are UNAVAILABLE, which
// callers retry; their text is logged, never sent. docs/participant-protocol.md
// describes the same rules for participants written in other languages.
package participant
