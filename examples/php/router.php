<?php
// The PHP participant over HTTP, for PHP's built-in server:
//
//   PHP_PARTICIPANT_DB=/var/lib/accounts.db php -S 127.0.0.1:8081 examples/php/router.php
//
// Its base URL is http://127.0.0.1:8081/tcc: the coordinator and the
// initiators POST <base>/try, <base>/confirm and <base>/cancel with the
// protobuf JSON form of TryRequest / ConfirmRequest / CancelRequest
// ({"gid": "...", "branchId": "...", "payload": "<base64>"}), and the
// answer's status is the outcome (docs/participant-protocol.md,
// "Participants over HTTP"): 200 done, 409 refused, 400 invalid, 503
// unknown (retried). GET /healthz answers 200.

declare(strict_types=1);

require __DIR__ . '/lib.php';

const HTTP_STATUS = [OK => 200, FAILED_PRECONDITION => 409, INVALID_ARGUMENT => 400, UNAVAILABLE => 503];

function answer(string $code, string $message): void
{
    http_response_code(HTTP_STATUS[$code]);
    header('Content-Type: application/json');
    echo $code === OK ? '{}' : json_encode(['code' => $code, 'message' => $message]);
}

function serve(): void
{
    $path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);
    if ($path === '/healthz') {
        migrate(db());
        answer(OK, '');
        return;
    }
    $op = match ($path) {
        '/tcc/try' => 'do_try',
        '/tcc/confirm' => 'do_confirm',
        '/tcc/cancel' => 'do_cancel',
        default => null,
    };
    if ($op === null) {
        http_response_code(404);
        header('Content-Type: application/json');
        echo json_encode(['code' => 'NOT_FOUND', 'message' => 'no such path']);
        return;
    }
    if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
        http_response_code(405);
        header('Allow: POST');
        return;
    }
    try {
        $req = json_decode((string) file_get_contents('php://input'), true, 4);
        if (!is_array($req) || array_is_list($req)) {
            throw new Answer(INVALID_ARGUMENT, 'body must be a JSON object');
        }
        // protojson: lowerCamelCase names; the proto names are accepted too.
        $gid = $req['gid'] ?? null;
        $branchId = $req['branchId'] ?? $req['branch_id'] ?? null;
        check_ids($gid, $branchId);
        if (($_SERVER['HTTP_SETTLE_GID'] ?? $gid) !== $gid || ($_SERVER['HTTP_SETTLE_BRANCH_ID'] ?? $branchId) !== $branchId) {
            throw new Answer(INVALID_ARGUMENT, 'Settle-Gid / Settle-Branch-Id headers differ from the body');
        }
        $payload = base64_decode((string) ($req['payload'] ?? ''), true);
        if ($payload === false) {
            throw new Answer(INVALID_ARGUMENT, 'payload is not base64');
        }
        $result = $op($gid, $branchId, $payload);
        error_log(sprintf('%s %s/%s: %s', substr($path, 5), $gid, $branchId, $result));
        answer(OK, '');
    } catch (Answer $a) {
        error_log(sprintf('%s %s: %s %s', substr($path, 5), $gid ?? '?', $a->status, $a->getMessage()));
        answer($a->status, $a->getMessage());
    } catch (Throwable $e) {
        // No SQL text or internal detail in the answer.
        error_log('participant error: ' . $e->getMessage());
        answer(UNAVAILABLE, 'unexpected failure, try again');
    }
}

serve();
