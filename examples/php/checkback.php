<?php
// The PHP participant's check-back (docs/participant-protocol.md, section
// 4): for each TRIED branch that heard neither Confirm nor Cancel in time,
// claim it, ask the coordinator POST /v1/checkback, and apply the verdict
// through the same fence as the HTTP calls.
//
//   php checkback.php --coordinator http://127.0.0.1:7401 [--token-file F] [--loop 1.0]
//
// Without --loop it makes one pass and exits (run it from cron, or a loop);
// with --loop S it passes every S seconds. The token (Authorization: Bearer)
// is the file's content or $SETTLE_TOKEN, when either is given. The
// database is $PHP_PARTICIPANT_DB.

declare(strict_types=1);

require __DIR__ . '/lib.php';

const LEASE_US = 10_000_000;   // a claimed row is not asked again for 10 s
const MAX_BACKOFF_US = 60_000_000;

$opts = getopt('', ['coordinator:', 'token-file:', 'loop:']);
$coordinator = rtrim((string) ($opts['coordinator'] ?? 'http://127.0.0.1:7401'), '/');
$token = getenv('SETTLE_TOKEN') ?: '';
if (isset($opts['token-file'])) {
    $token = trim((string) file_get_contents((string) $opts['token-file']));
}

// parse_duration reads a protobuf JSON duration ("5s", "1.5s", "0.000100s").
function parse_duration(mixed $d): ?int
{
    if (!is_string($d) || !preg_match('/^(\d+)(?:\.(\d{1,9}))?s$/D', $d, $m)) {
        return null;
    }
    return (int) $m[1] * 1_000_000 + (int) str_pad(substr($m[2] ?? '', 0, 6), 6, '0');
}

// ask POSTs the check-back; returns the decoded answer, or null for "no
// answer / ask again later" (429, 503, 504, network errors, ...).
function ask(string $coordinator, string $token, string $gid, string $branchId): ?array
{
    $headers = "Content-Type: application/json\r\n";
    if ($token !== '') {
        $headers .= "Authorization: Bearer $token\r\n";
    }
    $ctx = stream_context_create(['http' => [
        'method' => 'POST',
        'header' => $headers,
        'content' => json_encode(['gid' => $gid, 'branchId' => $branchId]),
        'timeout' => 5,
        'ignore_errors' => true,
        'follow_location' => 0,
    ]]);
    $body = @file_get_contents($coordinator . '/v1/checkback', false, $ctx);
    $status = 0;
    foreach ($http_response_header ?? [] as $h) {
        if (preg_match('#^HTTP/\S+ (\d{3})#', $h, $m)) {
            $status = (int) $m[1];
        }
    }
    if ($body === false || $status !== 200) {
        error_log("checkback $gid/$branchId: no verdict (HTTP $status): " . substr((string) $body, 0, 200));
        return null;
    }
    $ans = json_decode($body, true);
    return is_array($ans) ? $ans : null;
}

function pass(string $coordinator, string $token): int
{
    $db = db();
    $now = now_us();
    $due = run($db, "SELECT gid, branch_id, payload, next_check_us, check_count FROM settle_fence
                          WHERE state = 'TRIED' AND next_check_us <= ? ORDER BY next_check_us LIMIT 100", [$now]);
    $rows = $due->fetchAll(PDO::FETCH_ASSOC);
    $done = 0;
    foreach ($rows as $r) {
        // Claim: a compare-and-set no other instance can also win.
        $claim = run($db, "UPDATE settle_fence SET next_check_us = ?, check_count = check_count + 1
                            WHERE gid = ? AND branch_id = ? AND state = 'TRIED' AND next_check_us = ?",
            [$now + LEASE_US, $r['gid'], $r['branch_id'], (int) $r['next_check_us']]);
        if ($claim->rowCount() !== 1) {
            continue;
        }
        $ans = ask($coordinator, $token, $r['gid'], $r['branch_id']);
        $payload = (string) $r['payload'];
        try {
            switch ($ans['verdict'] ?? null) {
                case 'VERDICT_CONFIRM':
                    error_log("checkback {$r['gid']}/{$r['branch_id']}: confirm: " . do_confirm($r['gid'], $r['branch_id'], $payload));
                    $done++;
                    break;
                case 'VERDICT_CANCEL':
                    error_log("checkback {$r['gid']}/{$r['branch_id']}: cancel: " . do_cancel($r['gid'], $r['branch_id'], $payload));
                    $done++;
                    break;
                default:
                    // Pending: ask again after retry_after. No answer:
                    // exponential backoff with jitter; never guess.
                    $wait = $ans !== null ? parse_duration($ans['retryAfter'] ?? null) : null;
                    if ($ans !== null) {
                        error_log("checkback {$r['gid']}/{$r['branch_id']}: pending: " . ($ans['verdict'] ?? '?') . ' retry after ' . ($ans['retryAfter'] ?? '-'));
                    }
                    if ($wait === null) {
                        $wait = min(MAX_BACKOFF_US, 500_000 << min(16, (int) $r['check_count']));
                        $wait = intdiv($wait, 2) + random_int(0, intdiv($wait, 2));
                    }
                    run($db, "UPDATE settle_fence SET next_check_us = ? WHERE gid = ? AND branch_id = ? AND state = 'TRIED'",
                        [now_us() + $wait, $r['gid'], $r['branch_id']]);
            }
        } catch (Answer $a) {
            error_log("checkback {$r['gid']}/{$r['branch_id']}: {$a->status} {$a->getMessage()}");
        }
    }
    return $done;
}

$loop = isset($opts['loop']) ? (float) $opts['loop'] : 0.0;
do {
    try {
        pass($coordinator, $token);
    } catch (Throwable $e) {
        error_log('checkback pass failed: ' . $e->getMessage());
        if ($loop <= 0) {
            exit(1);
        }
    }
    if ($loop > 0) {
        usleep((int) ($loop * 1e6));
    }
} while ($loop > 0);
