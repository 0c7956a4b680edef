<?php
// Shared code of the PHP participant (router.php) and its check-back loop
// (checkback.php): an account service that keeps balances in SQLite with
// the fence rules of docs/participant-protocol.md, written from that page.
//
// Plain PHP 8.2 with PDO SQLite (Debian: php-cli php-sqlite3); no framework.

declare(strict_types=1);

const FENCE_DDL = [
    // docs/participant-protocol.md section 1, SQLite form.
    "CREATE TABLE IF NOT EXISTS settle_fence (
        gid            TEXT    NOT NULL,
        branch_id      TEXT    NOT NULL,
        state          TEXT    NOT NULL,
        tried          INTEGER NOT NULL,
        payload_digest TEXT    NOT NULL,
        payload        BLOB    NOT NULL,
        created_us     INTEGER NOT NULL,
        updated_us     INTEGER NOT NULL,
        next_check_us  INTEGER NOT NULL,
        check_count    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (gid, branch_id)
    ) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS settle_fence_due ON settle_fence (state, next_check_us)",
    "CREATE INDEX IF NOT EXISTS settle_fence_created ON settle_fence (created_us)",
    // The business table: balance and the part of it frozen by Trys.
    "CREATE TABLE IF NOT EXISTS account (
        name    TEXT    NOT NULL PRIMARY KEY,
        balance INTEGER NOT NULL,
        frozen  INTEGER NOT NULL DEFAULT 0,
        CHECK (balance >= 0 AND frozen >= 0 AND frozen <= balance)
    )",
];

// The account that Confirm credits with what it takes from the payer, so
// that the sum of all balances never changes.
const MERCHANT = 'merchant';

const OK = 'OK';
const FAILED_PRECONDITION = 'FAILED_PRECONDITION';
const INVALID_ARGUMENT = 'INVALID_ARGUMENT';
const UNAVAILABLE = 'UNAVAILABLE';

// Thrown to answer a call with a status other than OK.
final class Answer extends Exception
{
    public function __construct(public readonly string $status, string $message)
    {
        parent::__construct($message);
    }
}

// Thrown inside a local transaction to run it again from the start.
final class StartOver extends Exception
{
}

function db(): PDO
{
    static $pdo = null;
    if ($pdo !== null) {
        return $pdo;
    }
    $path = getenv('PHP_PARTICIPANT_DB') ?: __DIR__ . '/participant.db';
    $pdo = new PDO('sqlite:' . $path, null, null, [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_TIMEOUT => 10, // busy timeout, seconds
    ]);
    $pdo->exec('PRAGMA journal_mode = WAL');
    $pdo->exec('PRAGMA synchronous = NORMAL');
    $pdo->exec('PRAGMA busy_timeout = 10000');
    return $pdo;
}

function migrate(PDO $db): void
{
    foreach (FENCE_DDL as $ddl) {
        $db->exec($ddl);
    }
    $db->exec("INSERT OR IGNORE INTO account (name, balance) VALUES ('" . MERCHANT . "', 0)");
}

function now_us(): int
{
    return (int) floor(microtime(true) * 1e6);
}

// check_after_us is how long a TRIED row waits for Confirm/Cancel before
// the check-back loop asks the coordinator (section 4).
function check_after_us(): int
{
    $ms = getenv('PHP_PARTICIPANT_CHECK_AFTER_MS');
    return ($ms === false || $ms === '' ? 30000 : max(1, (int) $ms)) * 1000;
}

// check_ids validates gid and branch_id as the protocol defines them.
function check_ids(mixed $gid, mixed $branchId): void
{
    if (!is_string($gid) || !preg_match('/^[A-Za-z0-9._:-]{1,128}$/D', $gid)) {
        throw new Answer(INVALID_ARGUMENT, 'gid must be 1..128 characters of A-Z a-z 0-9 . _ : -');
    }
    if (!is_string($branchId) || !preg_match('/^[A-Za-z0-9._:-]{1,64}$/D', $branchId)) {
        throw new Answer(INVALID_ARGUMENT, 'branch_id must be 1..64 characters of A-Z a-z 0-9 . _ : -');
    }
}

// parse_payload checks the business payload {"user": "...", "amount": n}
// *before* anything is recorded: a malformed Cancel must not become a null
// compensation (section 3).
function parse_payload(string $payload): array
{
    $p = json_decode($payload, true, 4);
    if (!is_array($p) || array_is_list($p) || array_diff(array_keys($p), ['user', 'amount']) !== []) {
        throw new Answer(INVALID_ARGUMENT, 'payload must be a JSON object {"user": ..., "amount": ...}');
    }
    $user = $p['user'] ?? null;
    $amount = $p['amount'] ?? null;
    if (!is_string($user) || !preg_match('/^[A-Za-z0-9_-]{1,64}$/D', $user) || $user === MERCHANT) {
        throw new Answer(INVALID_ARGUMENT, 'payload user must be 1..64 characters of A-Z a-z 0-9 _ -');
    }
    if (!is_int($amount) || $amount <= 0 || $amount > 100000000000) {
        throw new Answer(INVALID_ARGUMENT, 'payload amount must be an integer in 1..100000000000 (cents)');
    }
    return ['user' => $user, 'amount' => $amount];
}

function is_busy(PDOException $e): bool
{
    $code = $e->errorInfo[1] ?? null;
    return $code === 5 || $code === 6; // SQLITE_BUSY, SQLITE_LOCKED
}

function is_duplicate(PDOException $e): bool
{
    return ($e->errorInfo[1] ?? null) === 19; // SQLITE_CONSTRAINT (the fence's primary key)
}

// local runs $fn in one local transaction (BEGIN IMMEDIATE: SQLite's write
// lock up front, so two writers never deadlock upgrading their locks), and
// reruns it on SQLITE_BUSY or StartOver. $fn returns the answer's message
// for OK, or throws Answer.
function local(PDO $db, callable $fn): string
{
    for ($attempt = 1; ; $attempt++) {
        try {
            $db->exec('BEGIN IMMEDIATE');
            try {
                $msg = $fn($db);
                $db->exec('COMMIT');
                return $msg;
            } catch (Throwable $e) {
                try {
                    $db->exec('ROLLBACK');
                } catch (PDOException) {
                    // already rolled back by SQLite
                }
                throw $e;
            }
        } catch (StartOver) {
            // a concurrent call rolled back: look again
        } catch (PDOException $e) {
            if (!is_busy($e)) {
                throw $e;
            }
        }
        if ($attempt >= 50) {
            throw new Answer(UNAVAILABLE, 'database busy, try again');
        }
        usleep(random_int(1000, 20000));
    }
}

// run executes one statement, binding integers as integers: PDO's
// execute(array) binds everything as text, and in SQLite an expression
// such as balance - frozen >= '1500' compares an integer with a text,
// which is always false.
function run(PDO $db, string $sql, array $args): PDOStatement
{
    $q = $db->prepare($sql);
    foreach (array_values($args) as $i => $v) {
        $q->bindValue($i + 1, $v, is_int($v) ? PDO::PARAM_INT : PDO::PARAM_STR);
    }
    $q->execute();
    return $q;
}

function fence_row(PDO $db, string $gid, string $branchId): ?array
{
    $q = run($db, 'SELECT state, tried, payload_digest FROM settle_fence WHERE gid = ? AND branch_id = ?', [$gid, $branchId]);
    $row = $q->fetch(PDO::FETCH_ASSOC);
    return $row === false ? null : $row;
}

// insert_fence inserts a fence row and returns false on a duplicate key
// (the branch was seen before): insert first, never select-then-insert.
function insert_fence(PDO $db, string $gid, string $branchId, string $state, int $tried, string $digest, string $payload, int $now, int $checkAt): bool
{
    $q = $db->prepare('INSERT INTO settle_fence (gid, branch_id, state, tried, payload_digest, payload, created_us, updated_us, next_check_us, check_count)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)');
    $q->bindValue(1, $gid);
    $q->bindValue(2, $branchId);
    $q->bindValue(3, $state);
    $q->bindValue(4, $tried, PDO::PARAM_INT);
    $q->bindValue(5, $digest);
    $q->bindValue(6, $payload, PDO::PARAM_LOB);
    $q->bindValue(7, $now, PDO::PARAM_INT);
    $q->bindValue(8, $now, PDO::PARAM_INT);
    $q->bindValue(9, $checkAt, PDO::PARAM_INT);
    try {
        $q->execute();
        return true;
    } catch (PDOException $e) {
        if (is_duplicate($e)) {
            return false;
        }
        throw $e;
    }
}

function do_try(string $gid, string $branchId, string $payload): string
{
    $p = parse_payload($payload);
    $digest = hash('sha256', $payload);
    return local(db(), function (PDO $db) use ($gid, $branchId, $payload, $digest, $p): string {
        $now = now_us();
        if (!insert_fence($db, $gid, $branchId, 'TRIED', 1, $digest, $payload, $now, $now + check_after_us())) {
            // Seen before. The failed INSERT changed nothing, and under
            // BEGIN IMMEDIATE no other writer is open, so the row read here
            // is the committed one (the doc's ROLLBACK-then-read).
            $row = fence_row($db, $gid, $branchId);
            if ($row === null) {
                throw new StartOver();
            }
            if ($row['state'] === 'CANCELLED') {
                throw new Answer(FAILED_PRECONDITION, (int) $row['tried'] === 1
                    ? 'try repeated after the branch was tried and then cancelled'
                    : 'try after cancel (cancelled first)');
            }
            if ($row['payload_digest'] !== $digest) {
                throw new Answer(FAILED_PRECONDITION, 'payload differs from the first call');
            }
            return 'repeat';
        }
        $q = run($db, 'UPDATE account SET frozen = frozen + ? WHERE name = ? AND balance - frozen >= ?', [$p['amount'], $p['user'], $p['amount']]);
        if ($q->rowCount() !== 1) {
            // Rolls back the fence row too: the Cancel that follows is a
            // null compensation.
            throw new Answer(FAILED_PRECONDITION, 'insufficient funds');
        }
        return 'tried';
    });
}

function do_confirm(string $gid, string $branchId, string $payload): string
{
    $p = parse_payload($payload);
    $digest = hash('sha256', $payload);
    return local(db(), function (PDO $db) use ($gid, $branchId, $digest, $p): string {
        $q = run($db, "UPDATE settle_fence SET state = 'CONFIRMED', updated_us = ?
                            WHERE gid = ? AND branch_id = ? AND state = 'TRIED' AND payload_digest = ?", [now_us(), $gid, $branchId, $digest]);
        if ($q->rowCount() === 1) {
            $u = run($db, 'UPDATE account SET balance = balance - ?, frozen = frozen - ? WHERE name = ? AND frozen >= ?',
                [$p['amount'], $p['amount'], $p['user'], $p['amount']]);
            if ($u->rowCount() !== 1) {
                // The reservation the fence promises is not there: never
                // mark the branch confirmed without the business change.
                // Roll back and answer an error the coordinator retries
                // (and flags at the horizon); an operator must look.
                throw new Answer(UNAVAILABLE, 'reservation missing for a tried branch; needs an operator');
            }
            run($db, 'UPDATE account SET balance = balance + ? WHERE name = ?', [$p['amount'], MERCHANT]);
            return 'confirmed';
        }
        $row = fence_row($db, $gid, $branchId);
        return match (true) {
            $row === null => throw new Answer(FAILED_PRECONDITION, 'confirm without try'),
            $row['state'] === 'CANCELLED' => throw new Answer(FAILED_PRECONDITION, 'conflict: confirm after cancel'),
            $row['payload_digest'] !== $digest => throw new Answer(FAILED_PRECONDITION, 'payload differs from the first call'),
            $row['state'] === 'CONFIRMED' => 'repeat',
            default => throw new StartOver(),
        };
    });
}

function do_cancel(string $gid, string $branchId, string $payload): string
{
    $p = parse_payload($payload);
    $digest = hash('sha256', $payload);
    return local(db(), function (PDO $db) use ($gid, $branchId, $payload, $digest, $p): string {
        $now = now_us();
        if (insert_fence($db, $gid, $branchId, 'CANCELLED', 0, $digest, $payload, $now, $now)) {
            return 'null compensation';
        }
        $q = run($db, "UPDATE settle_fence SET state = 'CANCELLED', updated_us = ?
                            WHERE gid = ? AND branch_id = ? AND state = 'TRIED' AND payload_digest = ?", [$now, $gid, $branchId, $digest]);
        if ($q->rowCount() === 1) {
            $u = run($db, 'UPDATE account SET frozen = frozen - ? WHERE name = ? AND frozen >= ?', [$p['amount'], $p['user'], $p['amount']]);
            if ($u->rowCount() !== 1) {
                throw new Answer(UNAVAILABLE, 'reservation missing for a tried branch; needs an operator');
            }
            return 'cancelled';
        }
        $row = fence_row($db, $gid, $branchId);
        return match (true) {
            $row === null => throw new StartOver(),
            $row['state'] === 'CONFIRMED' => throw new Answer(FAILED_PRECONDITION, 'conflict: cancel after confirm'),
            $row['payload_digest'] !== $digest => throw new Answer(FAILED_PRECONDITION, 'payload differs from the first call'),
            $row['state'] === 'CANCELLED' => 'repeat',
            default => throw new StartOver(),
        };
    });
}
