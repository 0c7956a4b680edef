<?php
// A PHP initiator: places one order through the coordinator's HTTP/JSON
// API (docs/http-api.md) with HTTP participants, and prints the outcome as
// one JSON line.
//
//   php initiator.php --coordinator http://127.0.0.1:7401 --gid order-1 \
//       --branch 'pay|http://127.0.0.1:8081/tcc|{"user":"alice","amount":1500}' \
//       --branch 'fee|http://127.0.0.1:8081/tcc|{"user":"alice","amount":50}' \
//       [--timeout 10s] [--repeat-try] [--token-file F]
//
// 1. POST /v1/transactions: Begin with the branches registered.
// 2. POST <participant>/try for each branch (--repeat-try sends each Try
//    twice, as a retrying gateway might: the participant must not care).
// 3. Every Try answered 2xx: POST /v1/transactions/{gid}:commit; any
//    refusal or unknown outcome: POST /v1/transactions/{gid}:rollback
//    (a Try whose outcome is unknown is cancelled, never assumed done).
// Exit status 0 when the order was decided either way, 1 otherwise.

declare(strict_types=1);

$opts = getopt('', ['coordinator:', 'gid:', 'branch:', 'timeout:', 'repeat-try', 'token-file:']);
$coordinator = rtrim((string) ($opts['coordinator'] ?? 'http://127.0.0.1:7401'), '/');
$gid = (string) ($opts['gid'] ?? ('php-' . bin2hex(random_bytes(8))));
$token = getenv('SETTLE_TOKEN') ?: '';
if (isset($opts['token-file'])) {
    $token = trim((string) file_get_contents((string) $opts['token-file']));
}
$branches = [];
foreach ((array) ($opts['branch'] ?? []) as $spec) {
    $parts = explode('|', (string) $spec, 3);
    if (count($parts) !== 3) {
        fwrite(STDERR, "--branch wants 'id|participant URL|payload'\n");
        exit(2);
    }
    $branches[] = ['branchId' => $parts[0], 'participant' => $parts[1], 'payload' => base64_encode($parts[2])];
}
if ($branches === []) {
    fwrite(STDERR, "give at least one --branch\n");
    exit(2);
}

// post sends a JSON body and returns [HTTP status (0: no answer), decoded body].
function post(string $url, array $body, array $headers = [], string $token = ''): array
{
    $h = "Content-Type: application/json\r\n";
    foreach ($headers as $k => $v) {
        $h .= "$k: $v\r\n";
    }
    if ($token !== '') {
        $h .= "Authorization: Bearer $token\r\n";
    }
    $ctx = stream_context_create(['http' => [
        'method' => 'POST', 'header' => $h, 'content' => json_encode($body, JSON_UNESCAPED_SLASHES),
        'timeout' => 10, 'ignore_errors' => true, 'follow_location' => 0,
    ]]);
    $raw = @file_get_contents($url, false, $ctx);
    $status = 0;
    foreach ($http_response_header ?? [] as $line) {
        if (preg_match('#^HTTP/\S+ (\d{3})#', $line, $m)) {
            $status = (int) $m[1];
        }
    }
    return [$raw === false ? 0 : $status, json_decode((string) $raw, true)];
}

function done(array $out, int $exit): never
{
    echo json_encode($out, JSON_UNESCAPED_SLASHES), "\n";
    exit($exit);
}

// Begin, repeated on an unknown outcome (the gid is the idempotency key).
$begin = ['gid' => $gid, 'timeout' => (string) ($opts['timeout'] ?? '10s'), 'branches' => $branches];
for ($i = 0; $i < 3; $i++) {
    [$st, $ans] = post("$coordinator/v1/transactions", $begin, [], $token);
    if ($st === 200 || ($st >= 400 && $st < 500 && $st !== 429)) {
        break;
    }
    usleep(200_000 << $i);
}
if ($st !== 200) {
    done(['gid' => $gid, 'outcome' => 'begin_failed', 'http' => $st, 'error' => $ans['message'] ?? null], 1);
}

$refused = null;
foreach ($branches as $b) {
    $req = ['gid' => $gid, 'branchId' => $b['branchId'], 'payload' => $b['payload']];
    $hdr = ['Settle-Gid' => $gid, 'Settle-Branch-Id' => $b['branchId']];
    foreach (isset($opts['repeat-try']) ? [1, 2] : [1] as $_) {
        [$st, $ans] = post(rtrim($b['participant'], '/') . '/try', $req, $hdr);
    }
    if ($st < 200 || $st > 299) {
        $refused = sprintf('%s: HTTP %d %s', $b['branchId'], $st, $ans['message'] ?? '');
        break;
    }
}

$op = $refused === null ? 'commit' : 'rollback';
$body = $refused === null ? ['wait' => false] : ['reason' => $refused];
for ($i = 0; $i < 5; $i++) {
    [$st, $ans] = post("$coordinator/v1/transactions/" . rawurlencode($gid) . ":$op", $body, [], $token);
    if ($st === 200 || ($st >= 400 && $st < 500 && $st !== 429)) {
        break;
    }
    usleep(200_000 << $i);
}
$state = $ans['transaction']['state'] ?? null;
done(['gid' => $gid, 'outcome' => $op, 'http' => $st, 'state' => $state, 'refused' => $refused, 'error' => $st === 200 ? null : ($ans['message'] ?? null)], $st === 200 ? 0 : 1);
